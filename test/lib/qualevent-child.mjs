// A process that reports hand-made element states through the built Qualevent reporter, for the
// kill -9 test: `node qualevent-child.mjs DIR URL CA_FILE CHANGES`. It makes CHANGES changes of
// each of its two elements, prints "stored N" once the outbox holds them, and runs until killed.
import { readFile } from 'node:fs/promises';
import { QualeventReporter } from '../../build/daemon/src/qualevent/reporter.js';

const [dir, url, caFile, changesArg] = process.argv.slice(2);
const changes = Number(changesArg);
const listeners = new Set();
const states = new Map(['k1', 'k2'].map((id) => [id, { element: id, state: 'unknown', previous: null, since: new Date().toISOString(), reasons: [], figures: {}, window_seconds: 60 }]));
const source = { current: () => [...states.values()], onChange: (l) => (listeners.add(l), () => listeners.delete(l)) };
const log = (level, text) => process.stderr.write(`${level}: ${text}\n`);
const reporter = new QualeventReporter(
  { url, applianceId: 'child', snapshotIntervalMs: 3600_000, outboxSizeBytes: 100 * 1024 * 1024 },
  source,
  { dir, log, ca: await readFile(caFile, 'utf8') },
);
await reporter.start();
const levels = ['ok', 'warning', 'critical'];
for (let i = 0; i < changes; i++)
  for (const [id, s] of states) {
    const next = { ...s, previous: s.state, state: levels[i % 3], since: new Date().toISOString() };
    states.set(id, next);
    for (const l of listeners) l(next);
  }
// The snapshot taken at start, and the changes.
await reporter.flushed();
process.stdout.write(`stored ${reporter.figures().outboxEvents}\n`);
setInterval(() => process.stdout.write(`sent ${reporter.figures().sent} outbox ${reporter.figures().outboxEvents}\n`), 200);
