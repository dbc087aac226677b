import { parseArgs } from 'node:util';
import { capacityBytes, checkEnvironment } from '../config/check-environment.js';
import { formatSize } from '../config/units.js';
import { configWarnings } from '../config/load.js';
import { EXIT, loadConfigOrReport, reportError } from './common.js';

export const checkConfigHelp = `usage: qe-packets check-config [FILE] [--config FILE]

Validates a configuration without starting anything: the schema and units, the BPF filters
(capture.filter and the elements', compiled by libpcap), the interfaces, the store paths and the capacity. Exit 0 when valid,
2 with one line per problem (key, value, fix) when not.`;

export async function checkConfigCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { config: { type: 'string' } }, allowPositionals: true });
  const config = await loadConfigOrReport(positionals[0] ?? values.config);
  if (!config) return EXIT.config;
  try {
    await checkEnvironment(config, { needInterfaces: true });
  } catch (e) {
    reportError(e);
    return EXIT.config;
  }
  const s = config.storage;
  const q = config.qualevent;
  process.stdout.write(
    `${config.source}: valid\n` +
      `  capture: ${config.capture.interfaces.map((i) => `${i.name} (ring ${formatSize(i.bufferBytes)})`).join(', ')}` +
      `${config.capture.filter ? `, filter "${config.capture.filter}"` : ''}, snaplen ${config.capture.snaplen}\n` +
      `  storage: ${s.paths.join(', ')}; ${s.mode}, capacity ${formatSize(await capacityBytes(config))}, files of ${formatSize(s.fileSizeBytes)}` +
      `${s.fileDurationMs ? ` or ${s.fileDurationMs / 1000}s` : ''}, flushed every ${s.flushIntervalMs} ms\n` +
      `  index: ${config.index.fields.length ? `${config.index.fields.join(', ')} (blocks of ${formatSize(config.index.blockSizeBytes)})` : 'off'}\n` +
      (config.elements.length ? `  elements: ${config.elements.map((e) => `${e.id} (${e.indicators.map((x) => x.name).join(', ')})`).join('; ')}\n` : '') +
      `  qualevent: ${q.url ? `${q.url} as qe-packets/${q.applianceId}, snapshots every ${q.snapshotIntervalMs / 1000}s, outbox ${formatSize(q.outboxSizeBytes)}` : 'off'}\n`,
  );
  for (const w of configWarnings(config)) process.stderr.write(`warning: ${w}\n`);
  return EXIT.ok;
}
