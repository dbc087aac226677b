// `qe-packets token create|list|revoke`: the API's tokens. The token is printed once, at creation;
// only its hash is kept (daemon/src/api/tokens.ts), in the file the daemon reads.
import { parseArgs } from 'node:util';
import { ROLES, type Role } from '../api/types.js';
import { TokenError, createToken, readTokens, revokeToken } from '../api/tokens.js';
import { tokensPath } from '../util/paths.js';

export const tokenHelp = `usage: qe-packets token create NAME --role viewer|analyst|admin [--json]
       qe-packets token list [--json]
       qe-packets token revoke NAME

Tokens for the API and the web console (Authorization: Bearer TOKEN). The token is shown once, at
creation; only its hash is kept, in ${tokensPath()}. A new or revoked token counts at once.

  viewer   status, files, statistics, history, the extraction plan
  analyst  also flows, extraction and the audit log
  admin    also reload

  --json   create: {"name", "role", "token"}; list: one object per token`;

const fail = (message: string) => {
  process.stderr.write(`qe-packets token: ${message}\n`);
  return 1;
};

export async function tokenCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { role: { type: 'string' }, json: { type: 'boolean' } } });
  const [action, name, ...extra] = positionals;
  const path = tokensPath();
  if (extra.length) return fail(`unexpected ${extra.join(' ')}\n\n${tokenHelp}`);
  try {
    switch (action) {
      case 'create': {
        if (!name) return fail(`create needs a NAME, e.g. qe-packets token create alice --role analyst`);
        if (!values.role) return fail(`--role is required: one of ${ROLES.join(', ')}`);
        const t = await createToken(path, name, values.role as Role);
        if (values.json) process.stdout.write(`${JSON.stringify(t)}\n`);
        else process.stdout.write(`${t.token}\n`);
        if (!values.json) process.stderr.write(`token ${t.name} (${t.role}) created; it is shown only now: keep it in a password manager\n`);
        return 0;
      }
      case 'list': {
        if (name) return fail(`list takes no NAME`);
        const tokens = await readTokens(path);
        if (values.json) {
          for (const t of tokens) process.stdout.write(`${JSON.stringify({ name: t.name, role: t.role, created: t.created })}\n`);
        } else if (!tokens.length) {
          process.stderr.write(`no tokens: make one with qe-packets token create NAME --role viewer|analyst|admin\n`);
        } else {
          const w = Math.max(4, ...tokens.map((t) => t.name.length));
          process.stdout.write(`${'NAME'.padEnd(w)}  ROLE     CREATED\n`);
          for (const t of tokens) process.stdout.write(`${t.name.padEnd(w)}  ${t.role.padEnd(7)}  ${t.created}\n`);
        }
        return 0;
      }
      case 'revoke': {
        if (!name) return fail(`revoke needs a NAME (qe-packets token list shows them)`);
        await revokeToken(path, name);
        process.stderr.write(`token ${name} revoked\n`);
        return 0;
      }
      default:
        return fail(`${action ? `unknown action ${action}` : 'an action is required'}: create, list or revoke\n\n${tokenHelp}`);
    }
  } catch (e) {
    if (e instanceof TokenError) return fail(e.message);
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EACCES' || err.code === 'EPERM') return fail(`${path}: permission denied (run as root)`);
    throw e;
  }
}
