// tuf-js (an outside TUF client) refreshes from and downloads a target out of a
// patchgate repository. Usage:
//   node tufjs_client.mjs METADATA_URL TARGETS_URL TRUSTED_ROOT WORKDIR TARGET_NAME [TOKEN]
import { Updater } from 'tuf-js';
import fs from 'node:fs';
import path from 'node:path';

const [metadataBaseUrl, targetBaseUrl, trustedRoot, workdir, targetName, token] = process.argv.slice(2);
const metadataDir = path.join(workdir, 'metadata');
const targetDir = path.join(workdir, 'targets');
fs.mkdirSync(metadataDir, { recursive: true });
fs.mkdirSync(targetDir, { recursive: true });
fs.copyFileSync(trustedRoot, path.join(metadataDir, 'root.json'));

const config = token ? { fetchTimeout: 10000 } : {};
if (token) {
  // tuf-js's default fetcher sends no credentials; wrap global fetch to add the bearer token.
  const original = globalThis.fetch;
  globalThis.fetch = (url, opts = {}) =>
    original(url, { ...opts, headers: { ...(opts.headers || {}), Authorization: `Bearer ${token}` } });
}
const updater = new Updater({ metadataBaseUrl, targetBaseUrl, metadataDir, targetDir, config });
try {
  const t0 = process.hrtime.bigint();
  await updater.refresh();
  const t1 = process.hrtime.bigint();
  const info = await updater.getTargetInfo(targetName);
  if (!info) throw new Error(`tuf-js found no target named ${targetName}`);
  const out = await updater.downloadTarget(info, path.join(targetDir, encodeURIComponent(targetName)));
  const t2 = process.hrtime.bigint();
  console.log(JSON.stringify({ ok: true, file: out, refresh_ms: Number(t1 - t0) / 1e6,
                               lookup_download_ms: Number(t2 - t1) / 1e6 }));
} catch (e) {
  console.error(`tuf-js failed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
}
