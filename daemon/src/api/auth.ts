// Who is asking, and may they: the Bearer token checked against the token store (tokens.ts), the
// route's least role (types.ts), and a bound on failed attempts per address, so tokens cannot be
// guessed at the speed of the network (not that 256 random bits could be: the bound also keeps a
// scanner from costing the daemon a hash per request for ever).
import type { IncomingMessage } from 'node:http';
import type { Grant, Tickets } from './tickets.js';
import type { TokenRecord, TokenStore } from './tokens.js';
import { roleAllows, type ApiErrorCode, type Role } from './types.js';

/** Failed attempts an address may make within the window; the next is answered 429 until the window has passed. */
export const MAX_FAILURES = 10;
export const FAILURE_WINDOW_MS = 60_000;
// Addresses remembered at once: a flood from many addresses costs bounded memory (oldest forgotten).
const MAX_ADDRESSES = 10_000;

export type AuthOutcome =
  | { ok: true; token: TokenRecord }
  | { ok: false; status: 401 | 403 | 429; code: ApiErrorCode; message: string; retryAfterS?: number };

export class Authenticator {
  /** Per address: the times of its recent failures, oldest first. */
  private failures = new Map<string, number[]>();

  constructor(
    private readonly tokens: TokenStore,
    private readonly now: () => number = Date.now,
  ) {}

  private recent(address: string): number[] {
    const since = this.now() - FAILURE_WINDOW_MS;
    const list = (this.failures.get(address) ?? []).filter((t) => t > since);
    if (list.length) this.failures.set(address, list);
    else this.failures.delete(address);
    return list;
  }

  private fail(address: string): void {
    const list = this.recent(address);
    list.push(this.now());
    this.failures.delete(address); // re-inserted last: the map's order is the forgetting order
    this.failures.set(address, list);
    if (this.failures.size > MAX_ADDRESSES) this.failures.delete(this.failures.keys().next().value!);
  }

  private blocked(address: string): (AuthOutcome & { ok: false }) | undefined {
    const recent = this.recent(address);
    if (recent.length < MAX_FAILURES) return undefined;
    const retryAfterS = Math.max(1, Math.ceil((recent[0]! + FAILURE_WINDOW_MS - this.now()) / 1000));
    return { ok: false, status: 429, code: 'too_many_requests', message: `${recent.length} failed attempts from ${address} in the last ${FAILURE_WINDOW_MS / 1000} s: try again in ${retryAfterS} s`, retryAfterS };
  }

  /** A download ticket's grant (tickets.ts); a bad ticket counts as a failed attempt, as a bad token does. */
  redeem<T>(tickets: Tickets<T>, ticket: string | undefined, address: string): { ok: true; grant: Grant<T> } | (AuthOutcome & { ok: false }) {
    const blocked = this.blocked(address);
    if (blocked) return blocked;
    const grant = ticket === undefined ? undefined : tickets.redeem(ticket);
    if (grant) return { ok: true, grant };
    this.fail(address);
    return { ok: false, status: 401, code: 'unauthorized', message: `this download link is not valid: links from /extract/link work once, within ${tickets.ttlMs / 1000} s; start the download again` };
  }

  async check(req: IncomingMessage, address: string, least: Role): Promise<AuthOutcome> {
    const blocked = this.blocked(address);
    if (blocked) return blocked;
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) {
      this.fail(address);
      return { ok: false, status: 401, code: 'unauthorized', message: header ? 'the Authorization header is not "Bearer TOKEN"' : 'a token is required: send "Authorization: Bearer TOKEN" (qe-packets token create NAME --role viewer|analyst|admin makes one)' };
    }
    const token = await this.tokens.verify(m[1]!);
    if (!token) {
      this.fail(address);
      return { ok: false, status: 401, code: 'unauthorized', message: 'not a valid token (revoked, mistyped, or of another appliance)' };
    }
    if (!roleAllows(token.role, least)) return { ok: false, status: 403, code: 'forbidden', message: `token ${token.name} has role ${token.role}: this needs ${least} or above` };
    return { ok: true, token };
  }
}
