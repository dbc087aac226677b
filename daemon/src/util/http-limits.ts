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
});

export function applyLimits(server: Server, l: HttpLimits): void {
  server.maxConnections = l.maxConnections;
  server.headersTimeout = l.headersTimeoutMs;
  server.requestTimeout = l.requestTimeoutMs;
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  // Node's own handler answers a timed-out request but may leave the socket open; close it.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
    socket.end(err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    // A client that never reads must not keep the descriptor either.
    setTimeout(() => socket.destroy(), 1000).unref();
  });
}
