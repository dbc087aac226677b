// API tokens: made by `qe-packets token create`, checked by the API on every request. Only a hash
// of each token is kept (tokens.json, 0600, replaced whole), so a copy of the file lets nobody in.
//
// The hash is a plain SHA-256, not scrypt: a token is 32 random bytes (256 bits), so there is no
// guessable space for a slow hash to protect, as there would be with a password; and SHA-256 costs
// microseconds on each request where scrypt would cost tens of milliseconds of the daemon's one
// thread per request, which would make every request an easy way to slow the daemon down.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chown, readFile, stat } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../provision/write-file.js';
import { ROLES, type Role } from './types.js';

/** A token as given to its holder: a prefix people and secret scanners recognise, then 43 base64url characters. */
const TOKEN_PREFIX = 'qep_';
const TOKEN_RE = /^qep_[A-Za-z0-9_-]{43}$/;
export const TOKEN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

const tokenRecord = z.strictObject({
  name: z.string().regex(TOKEN_NAME_RE),
  role: z.enum(ROLES),
  /** SHA-256 of the token text, hex. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  created: z.string(),
});
export type TokenRecord = z.output<typeof tokenRecord>;

const tokenFile = z.strictObject({ version: z.literal(1), tokens: z.array(tokenRecord) });

export class TokenError extends Error {}

const hashOf = (token: string) => createHash('sha256').update(token).digest();

export async function readTokens(path: string): Promise<TokenRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new TokenError(`${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check its owner (the qe-packets user) and mode (0600)`);
  }
  let parsed;
  try {
    parsed = tokenFile.safeParse(JSON.parse(text));
  } catch (e) {
    throw new TokenError(`${path}: not JSON (${(e as Error).message}); remove it and create the tokens again`);
  }
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new TokenError(`${path}: ${i.path.join('.') || 'the file'}: ${i.message}; remove it and create the tokens again`);
  }
  return parsed.data.tokens;
}

async function writeTokens(path: string, tokens: TokenRecord[]): Promise<void> {
  const isNew = !statSync(path, { throwIfNoEntry: false });
  await writeFileAtomic(path, `${JSON.stringify({ version: 1, tokens }, null, 2)}\n`, { mode: 0o600 });
  // Made by root (the command), read by the daemon as the service user: a new file takes the
  // owner of the state directory systemd made for the service.
  if (isNew && process.getuid?.() === 0) {
    const dir = await stat(dirname(path));
    await chown(path, dir.uid, dir.gid);
  }
}

/** A new token for NAME: its text, shown once and never stored. */
export async function createToken(path: string, name: string, role: Role): Promise<{ name: string; role: Role; token: string }> {
  if (!TOKEN_NAME_RE.test(name)) throw new TokenError(`token name ${JSON.stringify(name)}: use letters, digits and . _ @ - (up to 64, starting with a letter or digit), e.g. alice or soc-script`);
  if (!(ROLES as readonly string[]).includes(role)) throw new TokenError(`--role ${role}: not a role; choose one of ${ROLES.join(', ')}`);
  const tokens = await readTokens(path);
  if (tokens.some((t) => t.name === name)) throw new TokenError(`a token named ${name} exists: revoke it first (qe-packets token revoke ${name}) or choose another name`);
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  tokens.push({ name, role, sha256: hashOf(token).toString('hex'), created: new Date().toISOString() });
  await writeTokens(path, tokens);
  return { name, role, token };
}

export async function revokeToken(path: string, name: string): Promise<void> {
  const tokens = await readTokens(path);
  const kept = tokens.filter((t) => t.name !== name);
  if (kept.length === tokens.length) throw new TokenError(`no token named ${name}${tokens.length ? ` (tokens: ${tokens.map((t) => t.name).join(', ')})` : ' (there are none)'}`);
  await writeTokens(path, kept);
}

/**
 * The daemon's view of the token file: re-read when it changes (a stat per request), so a token
 * made or revoked by the command counts at once, without a reload.
 */
export class TokenStore {
  private cached: { key: string; tokens: { record: TokenRecord; hash: Buffer }[] } | undefined;

  constructor(readonly path: string) {}

  private async load() {
    const st = await stat(this.path).catch(() => undefined);
    const key = st ? `${st.ino}:${st.mtimeMs}:${st.size}` : 'none';
    if (this.cached?.key !== key) {
      const records = await readTokens(this.path);
      this.cached = { key, tokens: records.map((record) => ({ record, hash: Buffer.from(record.sha256, 'hex') })) };
    }
    return this.cached.tokens;
  }

  /** The token's record, or undefined when it is not a valid token. */
  async verify(token: string): Promise<TokenRecord | undefined> {
    if (!TOKEN_RE.test(token)) return undefined;
    const hash = hashOf(token);
    let found: TokenRecord | undefined;
    // Every record compared in constant time: the answer's timing tells nothing of the hashes.
    for (const t of await this.load()) if (timingSafeEqual(t.hash, hash)) found = t.record;
    return found;
  }
}
