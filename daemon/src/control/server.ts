// The daemon's local control socket: `qe-packets status` asks it for the health report. A Unix
// socket, not a TCP port: only local users with access to its directory can reach it.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname } from 'node:path';
import type { StatusReport } from '../health/figures.js';
import { CONTROL_LIMITS, applyLimits, serverOptions } from '../util/http-limits.js';
import { toJson } from '../util/json.js';

export async function serveControl(socketPath: string, report: () => StatusReport): Promise<Server> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o750 });
  // A socket left by a daemon that was killed would make listen fail with EADDRINUSE.
  await rm(socketPath, { force: true });
  const server = createServer(serverOptions(CONTROL_LIMITS), (req, res) => {
    if (req.method === 'GET' && req.url === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${toJson(report())}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /status\n');
    }
  });
  applyLimits(server, CONTROL_LIMITS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(socketPath, 0o660);
  return server;
}
