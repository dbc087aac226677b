// The /metrics endpoint. Bound to loopback unless metrics.listen says otherwise.
import { createServer, type Server } from 'node:http';
import { METRICS_LIMITS, applyLimits, serverOptions } from '../util/http-limits.js';
import type { CaptureMetrics } from './registry.js';

export async function serveMetrics(metrics: CaptureMetrics, listen: { host: string; port: number }): Promise<Server> {
  const server = createServer(serverOptions(METRICS_LIMITS), (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e instanceof Error ? e.message : String(e)}\n`),
      );
    } else if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body><a href="/metrics">Qe-Packets metrics</a></body></html>\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
    }
  });
  applyLimits(server, METRICS_LIMITS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
