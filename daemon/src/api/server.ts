// The API and web console's server: HTTPS (node:https) with api.tls.cert and api.tls.key, or plain
// HTTP on loopback only (load.ts refuses anything else). Limits on the request line and headers
// (431), the query (414), the time to send a request, idle and total connections (http-limits.ts);
// every error is JSON `{"error": {"code", "message"}}`. /api/v1/… goes to routes.ts after the token
// and role check (auth.ts); every other path to the console's static files (console-assets.ts,
// when the build has them). The daemon that runs this holds no capture privilege.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { packageRoot } from '../util/native.js';
import type { Config } from '../config/config.js';
import { API_LIMITS, applyLimits, serverOptions } from '../util/http-limits.js';
import { log } from '../util/log.js';
import { Authenticator } from './auth.js';
import { HttpError, handlers, sendJson, type ApiContext } from './routes.js';
import { QueryError, queryParams } from './query.js';
import { Tickets } from './tickets.js';
import type { TokenStore } from './tokens.js';
import { API_PREFIX, ROUTES, type ApiErrorCode, type ApiPath, type RouteSpec } from './types.js';

/** A longer request target (path and query) is answered 414: filters are short, a megabyte of query is not a filter. */
export const MAX_TARGET_BYTES = 8192;

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 of the certificate (DER), AB:CD:… as browsers show it. */
  fingerprint: string;
}

/** The certificate and key named in the configuration; an error names the key and the fix. */
export function readTls(tls: Config['api']['tls']): TlsFiles | undefined {
  if (!tls.cert || !tls.key) return undefined;
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`${key} ${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a PEM file the qe-packets user can read`);
    }
  };
  const cert = read('api.tls.cert', tls.cert);
  const key = read('api.tls.key', tls.key);
  let fingerprint: string;
  try {
    fingerprint = new X509Certificate(cert).fingerprint256;
  } catch (e) {
    throw new Error(`api.tls.cert ${tls.cert}: not a PEM certificate (${(e as Error).message})`);
  }
  return { cert, key, fingerprint };
}

const errorBody = (code: ApiErrorCode | string, message: string) => `${JSON.stringify({ error: { code, message } })}\n`;

const LIMIT_CODES: Record<number, string> = { 400: 'bad_request', 408: 'request_timeout', 431: 'header_too_large' };

function sendError(res: ServerResponse, status: number, code: ApiErrorCode, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, JSON.parse(errorBody(code, message)), headers);
}

type ConsoleHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** The console's files, served by console-assets.ts from build/console when both are built. */
async function loadConsole(): Promise<ConsoleHandler | undefined> {
  const root = join(packageRoot, 'build', 'console');
  if (!existsSync(root)) return undefined;
  try {
    // A literal path, so the command's bundle (scripts/bundle-cli.mjs) carries the module.
    const m = await import('./console-assets.js');
    return m.consoleHandler(root);
  } catch (e) {
    log('warn', `web console not served: ${(e as Error).message}`);
    return undefined;
  }
}

export interface ApiServer {
  server: Server;
  url: string;
  fingerprint: string | null;
}

export async function serveApi(listen: { host: string; port: number }, tls: TlsFiles | undefined, tokens: TokenStore, api: Omit<ApiContext, 'tlsFingerprint' | 'tickets'>): Promise<ApiServer> {
  const auth = new Authenticator(tokens);
  const context: ApiContext = { ...api, tlsFingerprint: tls?.fingerprint ?? null, tickets: new Tickets() };
  const consoleHandler = await loadConsole();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('x-content-type-options', 'nosniff');
    const target = req.url ?? '/';
    if (Buffer.byteLength(target) > MAX_TARGET_BYTES) {
      return sendError(res, 414, 'uri_too_long', `the request's path and query are ${Buffer.byteLength(target)} bytes, more than ${MAX_TARGET_BYTES}: shorten the filter or the query`, { connection: 'close' });
    }
    const url = new URL(target, 'http://api');
    if (!url.pathname.startsWith(`${API_PREFIX}/`)) {
      if (consoleHandler?.(req, res)) return;
      return sendError(res, 404, 'not_found', `${url.pathname}: not found; the API is under ${API_PREFIX}/ (${API_PREFIX}/openapi.json describes it)`);
    }
    res.setHeader('cache-control', 'no-store');
    const path = url.pathname.slice(API_PREFIX.length) as ApiPath;
    const route: RouteSpec | undefined = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    if (!route) return sendError(res, 404, 'not_found', `${url.pathname}: no such endpoint (${API_PREFIX}/openapi.json lists them)`);
    if (req.method !== route.method) return sendError(res, 405, 'method_not_allowed', `${url.pathname} takes ${route.method}, not ${req.method}`, { allow: route.method });
    const address = req.socket.remoteAddress ?? 'unknown';
    let token;
    if (route.role) {
      const a = await auth.check(req, address, route.role);
      if (!a.ok) return sendError(res, a.status, a.code, a.message, a.retryAfterS ? { 'retry-after': String(a.retryAfterS) } : a.status === 401 ? { 'www-authenticate': 'Bearer realm="qe-packets"' } : {});
      token = a.token;
    }
    let params;
    try {
      params = queryParams(url, route);
    } catch (e) {
      if (e instanceof QueryError) return sendError(res, 400, 'bad_request', e.message);
      throw e;
    }
    let grant;
    if ('ticket' in route && route.ticket) {
      const a = auth.redeem(context.tickets, params.get('ticket')?.[0], address);
      if (!a.ok) return sendError(res, a.status, a.code, a.message, a.retryAfterS ? { 'retry-after': String(a.retryAfterS) } : {});
      grant = a.grant;
    }
    await handlers[path]({ req, res, params, ...(token ? { token } : {}), ...(grant ? { grant } : {}), address, api: context });
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof HttpError) return sendError(res, e.status, e.code, e.message, e.headers);
      log('error', `api: ${req.method} ${req.url}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      sendError(res, 500, 'internal', e instanceof Error ? e.message : String(e));
    });
  };
  const options = serverOptions(API_LIMITS);
  const server: Server = tls ? (createHttpsServer({ ...options, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, onRequest) as unknown as Server) : createHttpServer(options, onRequest);
  applyLimits(server, API_LIMITS, (status, reason, message) => {
    const body = errorBody(LIMIT_CODES[status] ?? 'bad_request', message);
    return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  });
  // A TLS handshake that fails (a scanner, a client that does not trust the certificate) is no error of ours.
  server.on('tlsClientError', (_e: Error, socket: { destroy: () => void }) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = addr && typeof addr === 'object' ? addr.port : listen.port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return { server, url: `${tls ? 'https' : 'http'}://${host}:${port}`, fingerprint: tls?.fingerprint ?? null };
}
