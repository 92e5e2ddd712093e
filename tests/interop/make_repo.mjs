// Builds a TUF repository with @tufjs/models and node's own ed25519 — code that is not
// ours — so patchgate-client's verification meets someone else's canonical JSON and
// signatures. Usage: node make_repo.mjs OUTDIR TARGET_NAME TARGET_FILE
// Writes OUTDIR/metadata/{1.root.json,timestamp.json,1.snapshot.json,1.targets.json} and
// OUTDIR/targets/<sha256>.<name> (consistent snapshots).
import { Metadata, Targets, Snapshot, Timestamp, MetaFile, TargetFile } from '@tufjs/models';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expires, specVersion, topLevelKeysAndRoot, writeTargetFile } from './tufjs_repo_parts.mjs';

const [outdir, targetName, targetFile] = process.argv.slice(2);
const { keys, root } = topLevelKeysAndRoot();
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

writeTargetFile(outdir, targetName, content, sha256);
console.log(JSON.stringify({ ok: true, sha256 }));
