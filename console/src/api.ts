// The one way the console talks to the daemon: /api/v1 with the session's token as a Bearer header.
// The token lives in sessionStorage only: it goes when the browser session does.
import type { ApiError, ApiPath, ExtractLinkResponse } from '../../daemon/src/api/types.js';

const KEY = 'qe-packets.token';
const PREFIX = '/api/v1';

export const session = {
  token: (): string | null => sessionStorage.getItem(KEY),
  set: (token: string): void => sessionStorage.setItem(KEY, token),
  clear: (): void => sessionStorage.removeItem(KEY),
};

/** An answer other than 2xx, with the daemon's message (the CLI's text for the same mistake). */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called on any 401 once logged in: the token was revoked or the daemon restarted with others. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(f: () => void): void {
  onUnauthorized = f;
}

export type Query = Record<string, string | number | undefined | null>;

export function apiUrl(path: ApiPath, query: Query = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `${PREFIX}${path}${s ? `?${s}` : ''}`;
}

async function send(path: ApiPath, query: Query, signal?: AbortSignal, token = session.token(), method: 'GET' | 'POST' = 'GET'): Promise<Response> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(apiUrl(path, query), { method, headers, signal, cache: 'no-store' });
  if (res.ok) return res;
  let code = 'http';
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as ApiError;
    code = body.error.code;
    message = body.error.message;
  } catch {
    // Not the API's JSON (a proxy's page): the status line says enough.
  }
  if (res.status === 401 && token === session.token()) onUnauthorized();
  throw new ApiFailure(res.status, code, message);
}

export async function api<T>(path: ApiPath, query: Query = {}, signal?: AbortSignal): Promise<T> {
  return (await (await send(path, query, signal)).json()) as T;
}

/** Tries a token without keeping it: the login page's check. */
export async function tryToken<T>(path: ApiPath, token: string): Promise<T> {
  return (await (await send(path, {}, undefined, token)).json()) as T;
}

/** A query's empty answer (the CLI's exit 3) as null, with every other failure thrown. */
export async function orEmpty<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiFailure && e.code === 'empty_range') return null;
    throw e;
  }
}

/**
 * Starts the browser's own download of an extraction: a plain link cannot carry the Bearer header,
 * so a single-use link is asked for (POST /extract/link) and followed. The browser saves the pcap
 * as it comes (nothing held in this page's memory) and shows the progress in its downloads.
 */
export async function startDownload(query: Query): Promise<ExtractLinkResponse> {
  const link = (await (await send('/extract/link', query, undefined, session.token(), 'POST')).json()) as ExtractLinkResponse;
  const a = document.createElement('a');
  a.href = link.url;
  a.download = '';
  document.body.append(a);
  a.click();
  a.remove();
  return link;
}
