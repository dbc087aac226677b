// One batch POSTed to Qe-Server and what its answer means for the events in it.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { BATCH_CONTENT_TYPE } from './events.js';

const TIMEOUT_MS = 30_000;
/** A Retry-After longer than this is taken as this: a misconfigured server must not silence us for days. */
export const RETRY_AFTER_MAX_MS = 3600_000;

/** 401, 403 (the token), 404, 405 (the URL), 407 (a proxy). */
export const SETUP_STATUSES = new Set([401, 403, 404, 405, 407]);

export type Verdict =
  | { outcome: 'delivered'; status: number }
  /** Try again later: network error, timeout, 5xx, 408, 429, SETUP_STATUSES; `retryAfterMs` when the server said when (429, 503). */
  | { outcome: 'retry'; status?: number; why: string; retryAfterMs?: number }
  /** The server refused these events (a 4xx other than 408, 429 and SETUP_STATUSES): sending them again would not help. */
  | { outcome: 'refused'; status: number; why: string };

export interface PostTarget {
  url: URL;
  token?: string;
  agent: HttpAgent | HttpsAgent;
}

export function postTarget(url: string, token: string | undefined, ca: string | undefined): PostTarget {
  const u = new URL(url);
  const agent = u.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, ...(ca ? { ca } : {}) }) : new HttpAgent({ keepAlive: true });
  return { url: u, ...(token ? { token } : {}), agent };
}

/** Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3), in ms from now. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(0, ms));
}

export function verdictOf(status: number, retryAfter: string | undefined, body: string): Verdict {
  if (status >= 200 && status < 300) return { outcome: 'delivered', status };
  const why = `HTTP ${status}${body ? `: ${body}` : ''}`;
  if (status === 429 || status === 503) {
    const retryAfterMs = parseRetryAfter(retryAfter);
    return { outcome: 'retry', status, why, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }
  // These judge the appliance's setup (token, URL), not the events: parking would set aside every
  // event until someone fixes it, so they are retried and show as qualevent_unreachable instead.
  if (SETUP_STATUSES.has(status)) return { outcome: 'retry', status, why: `${why} (check qualevent.url and the token in qualevent.token_file)` };
  if (status >= 400 && status < 500 && status !== 408) return { outcome: 'refused', status, why };
  return { outcome: 'retry', status, why };
}

/** `events`: each event's JSON text, as the outbox keeps it. */
export function postBatch(t: PostTarget, events: string[], signal?: AbortSignal): Promise<Verdict> {
  const body = Buffer.from(`[${events.join(',')}]`, 'utf8');
  const request = t.url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = request(
      t.url,
      {
        method: 'POST',
        agent: t.agent,
        timeout: TIMEOUT_MS,
        ...(signal ? { signal } : {}),
        headers: {
          'content-type': BATCH_CONTENT_TYPE,
          'content-length': body.length,
          ...(t.token ? { authorization: `Bearer ${t.token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          // Only the start of an answer is kept, for the log and the parked file.
          if (size < 1024) chunks.push(c);
          size += c.length;
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8').slice(0, 500).replace(/\s+/g, ' ').trim();
          const ra = res.headers['retry-after'];
          resolve(verdictOf(res.statusCode ?? 0, Array.isArray(ra) ? ra[0] : ra, text));
        });
        res.on('error', (e) => resolve({ outcome: 'retry', why: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000}s`)));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ outcome: 'retry', why: e.code ? `${e.code} (${e.message})` : e.message }));
    req.end(body);
  });
}
