// What the two repository builders (make_repo.mjs, make_flat_repo.mjs) share: ed25519 keys
// made by node's crypto in TUF's key form, a version-1 root that trusts one key per top-level
// role, and the consistent-snapshot file name a target's bytes are stored under.
import { Root, Key, Signature } from '@tufjs/models';
import { canonicalize } from '@tufjs/canonical-json';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const specVersion = '1.0.31';
// A year from now, in the form TUF metadata uses (no fractional seconds).
export const expires = new Date(Date.now() + 365 * 86400 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

// An ed25519 key: its @tufjs/models Key (key id = sha256 of the canonical public key form)
// and a signer that returns a Signature over the given bytes.
export function newKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url').toString('hex');
  const body = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: pub } };
  const keyID = crypto.createHash('sha256').update(canonicalize(body)).digest('hex');
  const key = new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: pub } });
  const signer = (data) => new Signature({ keyID, sig: crypto.sign(null, data, privateKey).toString('hex') });
  return { key, signer };
}

// One new key per top-level role and the version-1 root (consistent snapshots) trusting them.
export function topLevelKeysAndRoot() {
  const keys = Object.fromEntries(['root', 'timestamp', 'snapshot', 'targets'].map((r) => [r, newKey()]));
  const root = new Root({ version: 1, specVersion, expires, consistentSnapshot: true });
  for (const [role, k] of Object.entries(keys)) root.addKey(k.key, role);
  return { keys, root };
}

// Writes CONTENT as OUTDIR/targets/<dir of NAME>/<sha256>.<base of NAME>.
export function writeTargetFile(outdir, targetName, content, sha256) {
  const dir = path.dirname(targetName);
  const targetsDir = path.join(outdir, 'targets', dir === '.' ? '' : dir);
  fs.mkdirSync(targetsDir, { recursive: true });
  fs.writeFileSync(path.join(targetsDir, `${sha256}.${path.basename(targetName)}`), content);
}
