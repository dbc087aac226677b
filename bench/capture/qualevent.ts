// Qualevent delivery latency (issue 20: "from a state change to the receiver: under 2 s with the
// server up"): the reporter with its on-disk outbox (fsync'd) posting to a local HTTPS receiver.
// The state changes come from a hand-driven source, as the state engine emits them: what is timed
// is everything after the engine decided, the outbox write and fsync included.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import { join } from 'node:path';
import type { ElementLevel } from '../../daemon/src/elements/types.js';
import { QualeventReporter } from '../../daemon/src/qualevent/reporter.js';
import { makeCertificates } from '../../test/lib/certificates.js';
import { HandSource } from '../../test/lib/element-source.js';
import { round } from './stats.js';

export interface QualeventBenchOptions {
  workDir: string;
  elements: number;
  /** Single changes, one every spacingMs; then `bursts` changes of every element at once. */
  changes: number;
  spacingMs: number;
  bursts: number;
}

const TARGET_MS = 2000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function runQualeventLatency(o: QualeventBenchOptions, log: (m: string) => void): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(o.workDir, 'qe-qualevent-'));
  try {
    const certs = await makeCertificates(dir);
    const arrived = new Map<string, number>();
    const server = createServer(certs, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = Date.now();
        for (const e of JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { element: string; sequence: number; kind: string } }[])
          if (e.data.kind === 'change') arrived.set(`${e.data.element}#${e.data.sequence}`, at);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as { port: number }).port}/events`;
    const ids = Array.from({ length: o.elements }, (_, i) => `el-${i}`);
    const source = new HandSource(ids);
    const reporter = new QualeventReporter(
      { url, applianceId: 'bench', snapshotIntervalMs: 60_000, outboxSizeBytes: 100 * 2 ** 20 },
      source,
      { dir: join(dir, 'outbox'), log: () => {}, ca: await readFile(certs.caFile, 'utf8') },
    );
    await reporter.start();
    const made = new Map<string, number>();
    const seq = new Map<string, number>();
    const levels: ElementLevel[] = ['ok', 'warning', 'critical'];
    const change = (id: string) => {
      const n = (seq.get(id) ?? 0) + 1;
      seq.set(id, n);
      made.set(`${id}#${n}`, Date.now());
      source.set(id, levels[n % 3]!);
    };
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    log(`qualevent: ${o.changes} single changes every ${o.spacingMs} ms, then ${o.bursts} bursts of ${o.elements} elements`);
    for (let i = 0; i < o.changes; i++) {
      change(ids[i % ids.length]!);
      await sleep(o.spacingMs);
    }
    const singles = [...made.keys()];
    for (let b = 0; b < o.bursts; b++) {
      for (const id of ids) change(id);
      await sleep(1000);
    }
    const deadline = Date.now() + 30_000;
    while (arrived.size < made.size && Date.now() < deadline) await sleep(50);
    await reporter.stop();
    server.closeAllConnections();
    server.close();
    const lat = (keys: string[]) => keys.filter((k) => arrived.has(k)).map((k) => arrived.get(k)! - made.get(k)!).sort((a, b) => a - b);
    const stats = (l: number[]) => ({ events: l.length, p50Ms: round(percentile(l, 50), 1), p95Ms: round(percentile(l, 95), 1), maxMs: round(l.at(-1)!, 1) });
    const single = lat(singles);
    const burst = lat([...made.keys()].filter((k) => !singles.includes(k)));
    const all = [...single, ...burst].sort((a, b) => a - b);
    const missing = made.size - arrived.size;
    return {
      elements: o.elements,
      single: stats(single),
      burst: stats(burst),
      missing,
      targets: [{ target: `every change delivered in under ${TARGET_MS / 1000} s with the server up`, value: `max ${round(all.at(-1)!, 1)} ms, ${missing} missing`, met: missing === 0 && all.at(-1)! < TARGET_MS }],
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function qualeventReport(q: Record<string, unknown>): string {
  const s = q.single as Record<string, number>;
  const b = q.burst as Record<string, number>;
  const lines = [
    '\n== Qualevent: state change to receiver (HTTPS, outbox fsync included) ==',
    `single changes: ${s.events} events, p50 ${s.p50Ms} ms, p95 ${s.p95Ms} ms, max ${s.maxMs} ms`,
    `bursts of ${String(q.elements)} elements: ${b.events} events, p50 ${b.p50Ms} ms, p95 ${b.p95Ms} ms, max ${b.maxMs} ms`,
  ];
  for (const t of q.targets as { target: string; value: string; met: boolean }[]) lines.push(`${t.met ? 'MET    ' : 'NOT MET'} ${t.target}: ${t.value}`);
  return lines.join('\n');
}
