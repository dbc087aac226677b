// The control socket's reply read back by `qe-packets status`: validated where it is read, its
// nanosecond timestamps turned back into bigints in one place (control/report.ts).
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchStatus } from '../daemon/src/control/client.js';
import { serveControl } from '../daemon/src/control/server.js';
import { formatStatus } from '../daemon/src/commands/status.js';
import { zeroCounters } from '../daemon/src/capture/supervisor.js';
import type { StatusReport } from '../daemon/src/health/figures.js';
import { toJson } from '../daemon/src/util/json.js';
import { tempDir } from './lib/cli.js';

const servers: Server[] = [];
afterEach(() => servers.splice(0).forEach((s) => s.close()));

const report: StatusReport = {
  state: 'warning',
  reasons: [{ level: 'warning', code: 'drops', interface: 'eth0', message: 'eth0: 1.0% dropped' }],
  figures: {
    at: 1_764_000_100_000,
    version: '0.1.0',
    startedAt: 1_764_000_000_000,
    interfaces: [
      {
        name: 'eth0',
        up: true,
        restarts: 1,
        counters: { ...zeroCounters(), received: 100, written: 99, kernel_drops: 1 },
        filesWritten: 3,
        lastStatsAt: 1_764_000_099_000,
        window: { seconds: 60, packetsPerSecond: 1.5, bitsPerSecond: 12_000, offered: 100, dropped: 1, storeFullDrops: 0, writeErrors: 0 },
      },
    ],
    store: {
      mode: 'circular',
      paths: ['/srv/qe'],
      capacityBytes: 1e9,
      usedBytes: 5e8,
      freeBytes: 2e9,
      full: false,
      filesDeleted: 2,
      bytesDeleted: 2e6,
      // Past 2^53: a JSON number would lose its last digits.
      oldestNs: 1_764_000_000_123_456_789n,
      retentionSeconds: 100,
    },
  },
};

async function socket(): Promise<string> {
  return join(await tempDir(), 'control.sock');
}

describe('the status reply', () => {
  it('comes back from the real control socket as it was served, timestamps as bigints', async () => {
    const path = await socket();
    servers.push(await serveControl(path, () => report));
    const got = await fetchStatus(path);
    expect(got).toEqual(report);
    expect(typeof got.figures.store.oldestNs).toBe('bigint');
    expect(formatStatus(got)).toContain('oldest packet 2025-11-24T16:00:00.123456789Z');
  });

  for (const [what, body, named] of [
    ['a field it does not know', toJson({ ...report, uptime: 3 }), /uptime/],
    ['a timestamp that is a number', toJson(report).replace('"1764000000123456789"', '1764000000123456789'), /figures\.store\.oldestNs/],
    ['a counter missing', toJson(report).replace('"kernel_drops": 1,', ''), /figures\.interfaces\.0\.counters\.kernel_drops/],
  ] as const) {
    it(`is refused with ${what}, naming the field`, async () => {
      const path = await socket();
      const server = createServer((_req, res) => res.writeHead(200).end(body));
      await new Promise<void>((r) => server.listen(path, r));
      servers.push(server);
      await expect(fetchStatus(path)).rejects.toThrow(named);
    });
  }
});
