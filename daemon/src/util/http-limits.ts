// Bounds for the daemon's HTTP servers (/metrics, the control socket). Each connection costs a
// file descriptor, and the store is measured with descriptors too: unbounded, 1,100 half-open
// connections to /metrics left none for reading the store. A client that opens a connection and
// sends nothing, or sends its headers slowly, holds a slot for headersTimeout at most.
import type { Server } from 'node:http';

export interface HttpLimits {
  /** Connections held at once; more are closed as they arrive. */
  maxConnections: number;
  /** Time for a client to send the request headers. */
  headersTimeoutMs: number;
  /** Time for a whole request. */
  requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Request line and headers together; more is answered 431 (node's default is 16 KiB). */
  maxHeaderBytes?: number;
}

/** How often the timeouts above are enforced (node's connectionsCheckingInterval). */
export const CONNECTIONS_CHECK_MS = 1000;

export const METRICS_LIMITS: HttpLimits = {
  // Prometheus keeps one connection per scraper; a few scrapers and curl fit many times over.
  maxConnections: 32,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000, // longer than Prometheus' idle connection reuse
};

/**
 * The API: browsers keep a few connections each; a download holds one for as long as it takes
 * (requestTimeout bounds receiving the request, not sending the answer; a client that stops
 * reading is cut by the API's own stall timeout).
 */
export const API_LIMITS: HttpLimits = {
  maxConnections: 64,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 16 * 1024,
};

export const CONTROL_LIMITS: HttpLimits = {
  maxConnections: 16,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
};

/** Options for createServer (the checking interval can only be given there). */
export const serverOptions = (l: HttpLimits) => ({
  headersTimeout: l.headersTimeoutMs,
  requestTimeout: l.requestTimeoutMs,
  keepAliveTimeout: l.keepAliveTimeoutMs,
  connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
  ...(l.maxHeaderBytes ? { maxHeaderSize: l.maxHeaderBytes } : {}),
});

/** What a server says when a request breaks a limit before it reaches the handler. */
export type LimitAnswer = (status: number, reason: string, message: string) => string;

const plainAnswer: LimitAnswer = (status, reason) => `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n\r\n`;

export function applyLimits(server: Server, l: HttpLimits, answer: LimitAnswer = plainAnswer): void {
  server.maxConnections = l.maxConnections;
  server.headersTimeout = l.headersTimeoutMs;
  server.requestTimeout = l.requestTimeoutMs;
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  // Node's own handler answers a timed-out request but may leave the socket open; close it.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
    socket.end(
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? answer(408, 'Request Timeout', `the request did not arrive within ${l.requestTimeoutMs / 1000} s`)
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? answer(431, 'Request Header Fields Too Large', `the request line and headers are larger than ${l.maxHeaderBytes ?? 16384} bytes`)
          : answer(400, 'Bad Request', `not a well-formed HTTP request (${err.code ?? err.message})`),
    );
    // A client that never reads must not keep the descriptor either.
    setTimeout(() => socket.destroy(), 1000).unref();
  });
}
