// Qualevent end to end: the real daemon capturing a veth, an element whose TCP attempts are refused
// (RST answers, sent through the kernel by tcpreplay), its states reported to a real HTTPS receiver
// and read with the CloudEvents SDK; then, receiver down, the element recovers, the daemon is
// killed with SIGKILL holding that change in its outbox, and a restart delivers it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStatusReport } from '../daemon/src/control/report.js';
import { cli, RunningCapture, sleep, tempDir, writeConfig } from './lib/cli.js';
import { ether, ipv4, tcpSegment } from './lib/index-traffic.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';
import { Receiver, makeCertificates } from './lib/qualevent-receiver.js';

const SYN = 0x02, RST = 0x04, ACK = 0x10;
const C = '10.61.0.10', S = '10.61.0.80';

function tcp4(src: string, dst: string, sport: number, dport: number, flags: number): Buffer {
  return ether(1, 2, [], 0x0800, ipv4(src, dst, 6, tcpSegment(sport, dport, flags)));
}

/** n connection attempts to S:80, each refused (RST-ACK) or answered (SYN-ACK). */
const attempts = (n: number, answer: 'refused' | 'answered', base: number) =>
  Array.from({ length: n }, (_, i) => [tcp4(C, S, base + i, 80, SYN), tcp4(S, C, 80, base + i, answer === 'refused' ? RST | ACK : SYN | ACK)]).flat();

let lab: Lab;
const running: RunningCapture[] = [];
beforeAll(() => {
  lab = new Lab();
});
afterAll(async () => {
  for (const r of running) await r.stop('SIGKILL').catch(() => {});
  await lab.cleanup();
});

type Data = { element: string; state: string; previous: string | null; sequence: number; kind: string; reasons: { indicator: string; value: number }[] };
const data = (e: { data?: unknown }) => e.data as Data;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; !(await cond()); await sleep(100)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

describe('qualevent live', () => {
  it('reports a refused element, then survives kill -9 with a change in its outbox', async () => {
    const dir = await tempDir();
    const certs = await makeCertificates(dir);
    const rx = new Receiver(certs);
    await rx.open();
    const link = await captureLink(lab, 'qeqv0');
    const store = join(dir, 'store');
    await (await import('node:fs/promises')).mkdir(store);
    await writeFile(join(dir, 'token'), 'live-token\n');
    const config = await writeConfig(dir, {
      paths: [store],
      interfaces: [link.capDev],
      metrics_listen: false,
      api_listen: false,
      extra: [
        'elements:',
        '  - id: web',
        `    filter: "host ${S} and tcp port 80"`,
        '    window: 5s',
        '    indicators:',
        '      tcp_resets: {warning: 10%, critical: 50%}',
        'qualevent:',
        `  url: ${rx.url}`,
        `  token_file: ${join(dir, 'token')}`,
        `  ca_file: ${certs.caFile}`,
        '  appliance_id: live-1',
      ].join('\n'),
    });
    const env = { QE_PACKETS_STATE_DIR: join(dir, 'state') };
    const start = async () => {
      const r = new RunningCapture(config, [], env);
      running.push(r);
      await r.waitFor(`${link.capDev}: capturing`);
      return r;
    };
    const status = async () => parseStatusReport((await cli(['status', '--json', '--socket', join(dir, 'control.sock')])).stdout);

    const first = await start();
    await until('the start snapshot', () => rx.events().length >= 1);
    expect(rx.events()[0]).toMatchObject({ source: 'qe-packets/live-1', subject: 'web', data: { kind: 'snapshot', sequence: 0, state: 'unknown' } });
    const sentAt = Date.now();
    await sendFrames(link.ns, link.genDev, attempts(20, 'refused', 20000), dir, { pps: 200 });
    await until('the change to critical', () => rx.events().some((e) => data(e).kind === 'change'));
    const critical = rx.events().find((e) => data(e).kind === 'change')!;
    expect(critical.data).toMatchObject({ element: 'web', state: 'critical', previous: 'unknown', sequence: 1 });
    expect(data(critical).reasons).toEqual([expect.objectContaining({ indicator: 'tcp_resets', value: 100, level: 'critical' })]);
    // Within one window of the traffic (the state engine's tick and delivery included).
    expect(rx.batches.find((b) => b.events.includes(critical))!.at - sentAt).toBeLessThan(5000 + 2000);
    expect(rx.batches[0]!.headers.authorization).toBe('Bearer live-token');

    // Receiver down; answered attempts only: once the refusals leave the window, web is ok.
    await rx.close();
    const deadline = Date.now() + 20_000;
    let base = 30000;
    while (Date.now() < deadline && !((await status()).figures.elements ?? []).some((e) => e.state === 'ok')) {
      await sendFrames(link.ns, link.genDev, attempts(5, 'answered', base), dir, { pps: 200 });
      base += 5;
      await sleep(500);
    }
    await until('the change in the outbox', async () => {
      const q = (await status()).figures.qualevent;
      return !!q && q.outboxEvents >= 1 && q.failingSince !== undefined;
    });
    await first.stop('SIGKILL');
    expect(first.output).not.toContain('live-token');

    await rx.open();
    const second = await start();
    // Answered attempts dilute the refusals before they leave the window, so the way back to ok
    // may pass through warning (20 refused in 20 + n attempts is above 10% until they age out):
    // whatever the path, the changes are numbered 1, 2, 3… each from the state before, and end ok.
    await until('the recovery, delivered after the restart', () => rx.events().some((e) => data(e).kind === 'change' && data(e).state === 'ok'));
    const changes = rx.events().filter((e) => data(e).kind === 'change').map((e) => [data(e).sequence, data(e).previous, data(e).state] as const);
    expect(changes[0]).toEqual([1, 'unknown', 'critical']);
    changes.forEach(([seq, previous], i) => {
      expect(seq).toBe(i + 1);
      if (i > 0) expect(previous).toBe(changes[i - 1]![2]);
    });
    expect(changes.at(-1)![2]).toBe('ok');
    expect(changes.length).toBeLessThanOrEqual(3);
    const last = changes.length;
    await until('the second run snapshot', () => rx.events().filter((e) => data(e).kind === 'snapshot' && data(e).sequence === last).length >= 1);
    const ids = rx.events().map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    await second.stop();
    await rx.close();
  }, 120_000);
});
