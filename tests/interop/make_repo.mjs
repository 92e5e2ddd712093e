// Builds a TUF repository with @tufjs/models and node's own ed25519 — code that is not
// ours — so patchgate-client's verification meets someone else's canonical JSON and
// signatures. Usage: node make_repo.mjs OUTDIR TARGET_NAME TARGET_FILE
// Writes OUTDIR/metadata/{1.root.json,timestamp.json,1.snapshot.json,1.targets.json} and
// OUTDIR/targets/<sha256>.<name> (consistent snapshots).
import { Metadata, Root, Targets, Snapshot, Timestamp, Key, Signature, MetaFile, TargetFile } from '@tufjs/models';
import { canonicalize } from '@tufjs/canonical-json';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const [outdir, targetName, targetFile] = process.argv.slice(2);
const expires = new Date(Date.now() + 365 * 86400 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const specVersion = '1.0.31';

function newKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url').toString('hex');
  const body = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: pub } };
  const keyID = crypto.createHash('sha256').update(canonicalize(body)).digest('hex');
  const key = new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: pub } });
  const signer = (data) => new Signature({ keyID, sig: crypto.sign(null, data, privateKey).toString('hex') });
  return { key, signer };
}

const keys = Object.fromEntries(['root', 'timestamp', 'snapshot', 'targets'].map((r) => [r, newKey()]));
const root = new Root({ version: 1, specVersion, expires, consistentSnapshot: true });
for (const [role, k] of Object.entries(keys)) root.addKey(k.key, role);

const content = fs.readFileSync(targetFile);
const sha256 = crypto.createHash('sha256').update(content).digest('hex');
const targets = new Targets({ version: 1, specVersion, expires });
targets.addTarget(new TargetFile({ path: targetName, length: content.length, hashes: { sha256 } }));

const write = (name, md) => {
  const text = JSON.stringify(md.toJSON(), null, 1);  // deliberately not canonical on disk
  fs.writeFileSync(path.join(outdir, 'metadata', name), text);
  return Buffer.from(text);
};
fs.mkdirSync(path.join(outdir, 'metadata'), { recursive: true });
const rootMd = new Metadata(root);
rootMd.sign(keys.root.signer);
write('1.root.json', rootMd);
const targetsMd = new Metadata(targets);
targetsMd.sign(keys.targets.signer);
write('1.targets.json', targetsMd);
const snapshot = new Snapshot({ version: 1, specVersion, expires, meta: { 'targets.json': new MetaFile({ version: 1 }) } });
const snapMd = new Metadata(snapshot);
snapMd.sign(keys.snapshot.signer);
const snapBytes = write('1.snapshot.json', snapMd);
const timestamp = new Timestamp({
  version: 1, specVersion, expires,
  snapshotMeta: new MetaFile({ version: 1, length: snapBytes.length,
                               hashes: { sha256: crypto.createHash('sha256').update(snapBytes).digest('hex') } }),
});
const tsMd = new Metadata(timestamp);
tsMd.sign(keys.timestamp.signer);
write('timestamp.json', tsMd);

const dir = path.dirname(targetName);
const base = path.basename(targetName);
const targetsDir = path.join(outdir, 'targets', dir === '.' ? '' : dir);
fs.mkdirSync(targetsDir, { recursive: true });
fs.writeFileSync(path.join(targetsDir, `${sha256}.${base}`), content);
console.log(JSON.stringify({ ok: true, sha256 }));
