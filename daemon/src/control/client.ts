// Asks a running daemon over its control socket.
import { request } from 'node:http';
import type { StatusReport } from '../health/figures.js';
import { parseStatusReport } from './report.js';

export class DaemonUnreachable extends Error {}

export function fetchStatus(socketPath: string, timeoutMs = 5000): Promise<StatusReport> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/status', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`the daemon answered ${res.statusCode}: ${body.trim()}`));
        try {
          resolve(parseStatusReport(body));
        } catch (e) {
          reject(new Error(`unreadable answer from the daemon: ${(e as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new DaemonUnreachable(`no answer on ${socketPath} within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof DaemonUnreachable) return reject(e);
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? 'the daemon is not running (start it: systemctl start qe-packets, or qe-packets capture)'
          : e.code === 'EACCES'
            ? 'permission denied (run as root or as a member of the qe-packets group)'
            : e.message;
      reject(new DaemonUnreachable(`cannot reach the daemon on ${socketPath}: ${why}`));
    });
    req.end();
  });
}
