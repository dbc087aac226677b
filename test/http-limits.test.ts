// The daemon's HTTP servers against clients that open connections and never finish a request:
// real half-open sockets on loopback against a real daemon (capturing on lo).
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { API_LIMITS, CONTROL_LIMITS, METRICS_LIMITS } from '../daemon/src/util/http-limits.js';
import { RunningCapture, cli, sleep, tempDir, writeConfig } from './lib/cli.js';
import { join } from 'node:path';

const running: RunningCapture[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const r of running.splice(0)) await r.stop();
});

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Opens `n` connections that send half a request and stop; resolves when all are open. */
async function halfOpen(n: number, target: { port: number; host: string } | { path: string }): Promise<{ closed: () => number }> {
  let closed = 0;
  await Promise.all(
    Array.from({ length: n }, () => {
      return new Promise<void>((resolve) => {
        const s = connect(target as never, () => {
          s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
          resolve();
        });
        s.resume(); // reads what the server answers, and so sees it close
        s.on('error', () => resolve());
        s.on('close', () => {
          closed++;
          resolve();
        });
        sockets.push(s);
      });
    }),
  );
  return { closed: () => closed };
}

describe('HTTP servers cap connections and the time a request may take', () => {
  it('/metrics, the API and the control socket: connections past the cap are closed at once, half-open ones after the header timeout, and the descriptors stay bounded', async () => {
    const dir = await tempDir();
    const store = join(dir, 'store');
    await import('node:fs/promises').then((f) => f.mkdir(store));
    const config = await writeConfig(dir, { interfaces: ['lo'], buffer: '4MiB', paths: [store] });
    const cap = new RunningCapture(config);
    running.push(cap);
    await cap.waitFor('lo: capturing');
    const url = new URL(await cap.metricsUrl());
    await cap.waitFor(/api: http:\/\/\S+/);
    const apiUrl = new URL(/api: (http:\/\/\S+)/.exec(cap.output)![1]!);
    const pid = cap.proc.pid!;
    const before = fdCount(pid);

    const n = 300;
    const metrics = await halfOpen(n, { port: Number(url.port), host: url.hostname });
    const control = await halfOpen(60, { path: join(dir, 'control.sock') });
    const api = await halfOpen(200, { port: Number(apiUrl.port), host: apiUrl.hostname });
    await sleep(500);
    // Everything past the caps is gone already; what is held costs one descriptor each.
    expect(metrics.closed()).toBeGreaterThanOrEqual(n - METRICS_LIMITS.maxConnections);
    expect(control.closed()).toBeGreaterThanOrEqual(60 - CONTROL_LIMITS.maxConnections);
    expect(api.closed()).toBeGreaterThanOrEqual(200 - API_LIMITS.maxConnections);
    expect(fdCount(pid) - before).toBeLessThanOrEqual(METRICS_LIMITS.maxConnections + CONTROL_LIMITS.maxConnections + API_LIMITS.maxConnections + 4);

    // Half a request is all they send: the header timeout frees every slot.
    await sleep(Math.max(METRICS_LIMITS.headersTimeoutMs, API_LIMITS.headersTimeoutMs) + 2500);
    expect(metrics.closed()).toBe(n);
    expect(control.closed()).toBe(60);
    expect(api.closed()).toBe(200);
    expect(fdCount(pid) - before).toBeLessThanOrEqual(4);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    // The API answers again once the slots are free.
    expect((await fetch(new URL('/api/v1/info', apiUrl))).status).toBe(200);
    const status = await cli(['status', '--json', '--socket', join(dir, 'control.sock')]);
    expect(JSON.parse(status.stdout).figures.interfaces[0].name).toBe('lo');
  }, 40_000);
});
