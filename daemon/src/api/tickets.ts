// Single-use download tickets (/extract/link, /extract/download). A browser saves a download as it
// comes only when it follows a plain link, and a link cannot carry the Bearer header: so a token
// holder asks for a ticket naming one extraction, and the link with the ticket is the credential
// for that extraction alone, once, for a minute. Like tokens, only a hash of each ticket is kept
// (a core dump or a heap snapshot holds no live ticket), and in memory only: a restart voids them.
import { createHash, randomBytes } from 'node:crypto';

export const TICKET_TTL_MS = 60_000;
/** Tickets outstanding at once: issuing more is refused until some are used or expire. */
export const MAX_TICKETS = 64;

const TICKET_RE = /^qet_[A-Za-z0-9_-]{43}$/;
const hashOf = (ticket: string) => createHash('sha256').update(ticket).digest('hex');

export interface Grant<T> {
  /** Who asked for the ticket: what the audit log names. */
  token: { name: string; role: string };
  what: T;
  expiresMs: number;
}

export class Tickets<T> {
  private byHash = new Map<string, Grant<T>>();

  constructor(
    private readonly now: () => number = Date.now,
    readonly ttlMs = TICKET_TTL_MS,
  ) {}

  private purge(): void {
    const t = this.now();
    for (const [h, g] of this.byHash) if (g.expiresMs <= t) this.byHash.delete(h);
  }

  /** A new ticket for `what`, or undefined when MAX_TICKETS are outstanding. */
  issue(token: Grant<T>['token'], what: T): { ticket: string; expiresMs: number } | undefined {
    this.purge();
    if (this.byHash.size >= MAX_TICKETS) return undefined;
    const ticket = `qet_${randomBytes(32).toString('base64url')}`;
    const expiresMs = this.now() + this.ttlMs;
    this.byHash.set(hashOf(ticket), { token: { name: token.name, role: token.role }, what, expiresMs });
    return { ticket, expiresMs };
  }

  /** The grant of a valid ticket, which is used up by this call; undefined for an unknown, used or expired one. */
  redeem(ticket: string): Grant<T> | undefined {
    if (!TICKET_RE.test(ticket)) return undefined;
    const h = hashOf(ticket);
    const g = this.byHash.get(h);
    if (!g) return undefined;
    this.byHash.delete(h);
    return g.expiresMs > this.now() ? g : undefined;
  }

  /** A redeemed ticket back, until its own expiry: its download could not start (no free slot). */
  giveBack(ticket: string, grant: Grant<T>): void {
    if (grant.expiresMs > this.now()) this.byHash.set(hashOf(ticket), grant);
  }

  get outstanding(): number {
    this.purge();
    return this.byHash.size;
  }
}
