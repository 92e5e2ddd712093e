// Builds a TUF repository with @tufjs/models (not our code) whose top-level targets.json
// lists COUNT targets flat, written in canonical JSON (securesystemslib form), for the
// client benchmark. Only the target named FILE_NAME gets a real file (FILE's bytes); the
// others are listed with random lengths and hashes.
// Usage: node make_flat_repo.mjs OUTDIR COUNT FILE_NAME FILE
import { Metadata, Targets, Snapshot, Timestamp, MetaFile, TargetFile } from '@tufjs/models';
import { canonicalize } from '@tufjs/canonical-json';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expires, specVersion, topLevelKeysAndRoot, writeTargetFile } from './tufjs_repo_parts.mjs';

const [outdir, countText, fileName, file] = process.argv.slice(2);
const count = Number(countText);
const { keys, root } = topLevelKeysAndRoot();
const content = fs.readFileSync(file);
const sha256 = crypto.createHash('sha256').update(content).digest('hex');
const dir = path.dirname(fileName);

// The targets map is built in one go. @tufjs/models 5.0.2 turns a Targets role to and from
// JSON with `reduce((acc, e) => ({...acc, e}))`, a copy of the whole map per target: 2,000
// targets take 1.7 s, 8,000 take 117 s, 30,000 would take hours (the builder of the last
// session never finished). So each entry is a @tufjs/models TargetFile (its own toJSON), the
// role's other fields come from a @tufjs/models Targets with no targets, and the map is put
// in place once. The signed part is canonicalised once (@tufjs/canonical-json), signed once,
// and the file is that text inside the envelope (keys "signatures" < "signed": canonical).
const entries = [];
for (let i = 0; i < count; i++) {
  const name = `${dir}/update-${String(i).padStart(6, '0')}.msp`;
  if (name === fileName) continue;
  entries.push([name, new TargetFile({ path: name, length: 200 + (i * 7919) % 1800,
    hashes: { sha256: crypto.createHash('sha256').update(name).digest('hex') },
    unrecognizedFields: { custom: { product: dir, version: '1.0' } } }).toJSON()]);
}
entries.push([fileName, new TargetFile({ path: fileName, length: content.length, hashes: { sha256 },
  unrecognizedFields: { custom: { product: dir, version: '1.0' } } }).toJSON()]);
const targetsSigned = new Targets({ version: 1, specVersion, expires }).toJSON();
targetsSigned.targets = Object.fromEntries(entries);

fs.mkdirSync(path.join(outdir, 'metadata'), { recursive: true });
// Canonical JSON of the signed part once, one signature over exactly those bytes.
const writeSigned = (name, signedJson, key) => {
  const signedText = canonicalize(signedJson);
  const sig = key.signer(Buffer.from(signedText));
  const text = `{"signatures":${canonicalize([sig.toJSON()])},"signed":${signedText}}`;
  fs.writeFileSync(path.join(outdir, 'metadata', name), text);
  return Buffer.from(text);
};
writeSigned('1.root.json', root.toJSON(), keys.root);
const targetsBytes = writeSigned('1.targets.json', targetsSigned, keys.targets);
const snapshot = new Snapshot({ version: 1, specVersion, expires,
  meta: { 'targets.json': new MetaFile({ version: 1, length: targetsBytes.length }) } });
const snapBytes = writeSigned('1.snapshot.json', snapshot.toJSON(), keys.snapshot);
const timestamp = new Timestamp({ version: 1, specVersion, expires,
  snapshotMeta: new MetaFile({ version: 1, length: snapBytes.length,
                               hashes: { sha256: crypto.createHash('sha256').update(snapBytes).digest('hex') } }) });
writeSigned('timestamp.json', timestamp.toJSON(), keys.timestamp);

// Check what was written with @tufjs/models itself (signature over the canonical form,
// envelope parse) on the small roles; the 30,000-target role is checked by every client of
// the benchmark, which all verify it before use.
for (const [name, role] of [['1.root.json', 'root'], ['1.snapshot.json', 'snapshot'], ['timestamp.json', 'timestamp']]) {
  const md = Metadata.fromJSON(role, JSON.parse(fs.readFileSync(path.join(outdir, 'metadata', name), 'utf8')));
  const rootMd = Metadata.fromJSON('root', JSON.parse(fs.readFileSync(path.join(outdir, 'metadata', '1.root.json'), 'utf8')));
  rootMd.verifyDelegate(role, md);
}
writeTargetFile(outdir, fileName, content, sha256);
console.log(JSON.stringify({ ok: true, targets_json_bytes: targetsBytes.length }));
