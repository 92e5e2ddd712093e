// Builds a TUF repository with @tufjs/models (not our code) whose top-level targets.json
// lists COUNT targets flat, written in canonical JSON (securesystemslib form), for the
// client benchmark. Only the target named FILE_NAME gets a real file (FILE's bytes); the
// others are listed with random lengths and hashes.
// Usage: node make_flat_repo.mjs OUTDIR COUNT FILE_NAME FILE
import { Metadata, Root, Targets, Snapshot, Timestamp, Key, Signature, MetaFile, TargetFile } from '@tufjs/models';
import { canonicalize } from '@tufjs/canonical-json';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const [outdir, countText, fileName, file] = process.argv.slice(2);
const count = Number(countText);
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

const content = fs.readFileSync(file);
const sha256 = crypto.createHash('sha256').update(content).digest('hex');
const targets = new Targets({ version: 1, specVersion, expires });
const dir = path.dirname(fileName);
for (let i = 0; i < count; i++) {
  const name = `${dir}/update-${String(i).padStart(6, '0')}.msp`;
  if (name === fileName) continue;
  targets.addTarget(new TargetFile({ path: name, length: 200 + (i * 7919) % 1800,
    hashes: { sha256: crypto.createHash('sha256').update(name).digest('hex') },
    unrecognizedFields: { custom: { product: dir, version: '1.0' } } }));
}
targets.addTarget(new TargetFile({ path: fileName, length: content.length, hashes: { sha256 },
  unrecognizedFields: { custom: { product: dir, version: '1.0' } } }));

fs.mkdirSync(path.join(outdir, 'metadata'), { recursive: true });
const write = (name, md) => {
  const text = canonicalize(md.toJSON());
  fs.writeFileSync(path.join(outdir, 'metadata', name), text);
  return Buffer.from(text);
};
const sign = (signed, key) => { const md = new Metadata(signed); md.sign(key.signer); return md; };
write('1.root.json', sign(root, keys.root));
const targetsBytes = write('1.targets.json', sign(targets, keys.targets));
const snapshot = new Snapshot({ version: 1, specVersion, expires,
  meta: { 'targets.json': new MetaFile({ version: 1, length: targetsBytes.length }) } });
const snapBytes = write('1.snapshot.json', sign(snapshot, keys.snapshot));
const timestamp = new Timestamp({ version: 1, specVersion, expires,
  snapshotMeta: new MetaFile({ version: 1, length: snapBytes.length,
                               hashes: { sha256: crypto.createHash('sha256').update(snapBytes).digest('hex') } }) });
write('timestamp.json', sign(timestamp, keys.timestamp));
const targetsDir = path.join(outdir, 'targets', dir);
fs.mkdirSync(targetsDir, { recursive: true });
fs.writeFileSync(path.join(targetsDir, `${sha256}.${path.basename(fileName)}`), content);
console.log(JSON.stringify({ ok: true, targets_json_bytes: targetsBytes.length }));
