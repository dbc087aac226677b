import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { checkEnvironment } from '../config/check-environment.js';
import type { Config } from '../config/config.js';
import { formatSize } from '../config/units.js';
import { Helper, helperArgs } from '../capture/helper.js';
import { ImportSource } from '../capture/import-source.js';
import type { FileClosedMessage } from '../capture/protocol.js';
import { countersOf, zeroCounters } from '../capture/supervisor.js';
import { StoreUnreadableError } from '../store/usage.js';
import { rememberClosedFiles } from '../store/catalog.js';
import { closedFileFacts } from '../store/catalog-feed.js';
import { CaptureDaemon, EndpointError, openStore, type CaptureSummary } from '../daemon/daemon.js';
import { toJson } from '../util/json.js';
import { log } from '../util/log.js';
import { EXIT, loadConfigOrReport, reportError } from './common.js';

export const captureHelp = `usage: qe-packets capture [--config FILE] [--summary FILE]
       qe-packets capture --read FILE [--iface LABEL] [--config FILE] [--summary FILE]

Captures the configured interfaces into the store until SIGTERM or SIGINT (files are closed
cleanly); SIGHUP reloads the config (filter, file size and duration, flush interval, interfaces)
without stopping capture, and restarts the helpers for a new index.fields. Closed files that need
an index are indexed in the background once capture runs. With --read, sends an existing pcap or
pcapng file through the same write path (BPF filter, snaplen, rotation, index) and exits when done.

  --config FILE    configuration (default /etc/qe-packets/config.yaml)
  --read FILE      import FILE instead of capturing live
  --iface LABEL    interface label in the names of imported files (default: import)
  --summary FILE   at the end, write per-interface counters and the files written as JSON`;

async function writeSummary(path: string | undefined, summary: CaptureSummary): Promise<void> {
  if (path) await writeFile(path, `${toJson(summary)}\n`);
}

async function readFileIntoStore(config: Config, file: string, label: string, summaryPath?: string): Promise<number> {
  // Files other writers (a daemon, another import) have open are locked and left alone by repair.
  const retention = await openStore(config);
  const helper = new Helper([...helperArgs(config, { file, label }), ...(await retention.argsFor(label))]);
  retention.attach(new ImportSource(helper, label));
  let last = zeroCounters();
  let fatal: string | undefined;
  const files: FileClosedMessage[] = [];
  const started = process.hrtime.bigint();
  helper.on('message', (m) => {
    if (m.type === 'stats') last = countersOf(m);
    else if (m.type === 'file_closed') files.push(m);
    else if (m.type === 'error') {
      if (m.fatal) fatal = m.message;
      else log('warn', m.message);
    }
  });
  const stop = () => void helper.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const { code } = await helper.exited;
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  await retention.stop();
  // The store's catalog learns the new files from the helper's report, not by reading them back.
  for (const p of rememberClosedFiles(files.flatMap((f) => closedFileFacts(f) ?? []))) log('warn', `catalog cache: ${p.path}: ${p.message}`);
  await writeSummary(summaryPath, { interfaces: { [label]: last }, files, store: retention.state() });
  if (code !== 0) {
    process.stderr.write(`error: ${fatal ?? `reading ${file} failed (exit ${code})`}\n`);
    return code === 2 ? EXIT.config : EXIT.failure;
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const gbps = (last.written_bytes * 8) / secs / 1e9;
  log('info', `${basename(file)}: ${last.received} packets read, ${last.filtered} filtered out, ${last.written} written (${formatSize(last.written_bytes)}) into ${files.length} file(s) in ${secs.toFixed(2)}s (${gbps.toFixed(2)} Gbit/s)`);
  const rs = retention.state();
  if (rs.filesDeleted) log('info', `circular retention deleted ${rs.filesDeleted} older files (${formatSize(rs.bytesDeleted)}) to make room`);
  if (last.store_full_drops) {
    log('error', `the store is full (linear mode, ${formatSize(rs.capacityBytes)}): ${last.store_full_drops} packets of ${basename(file)} were not imported`);
    return EXIT.failure;
  }
  return EXIT.ok;
}

async function captureLive(config: Config, configPath: string | undefined, summaryPath?: string): Promise<number> {
  const daemon = new CaptureDaemon(config, configPath ?? config.source, summaryPath !== undefined);
  try {
    await daemon.start();
  } catch (e) {
    if (!(e instanceof EndpointError)) throw e;
    reportError(e.cause);
    return EXIT.config;
  }
  const onHup = () => void daemon.reload();
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.off('SIGHUP', onHup);
  await writeSummary(summaryPath, await daemon.stop());
  return EXIT.ok;
}

export async function captureCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      read: { type: 'string', short: 'r' },
      iface: { type: 'string' },
      summary: { type: 'string' },
    },
  });
  const config = await loadConfigOrReport(values.config);
  if (!config) return EXIT.config;
  try {
    await checkEnvironment(config, { needInterfaces: !values.read });
  } catch (e) {
    reportError(e);
    return EXIT.config;
  }
  if (values.read) {
    const label = values.iface ?? 'import';
    if (!/^[A-Za-z0-9.@:+-][A-Za-z0-9._@:+-]*$/.test(label)) {
      process.stderr.write(`error: --iface ${JSON.stringify(label)}: a label is letters, digits and . _ @ : + - (it becomes part of file names)\n`);
      return EXIT.config;
    }
  }
  try {
    return values.read ? await readFileIntoStore(config, values.read, values.iface ?? 'import', values.summary) : await captureLive(config, values.config, values.summary);
  } catch (e) {
    // Before any helper started: nothing is granted from a store that could not be counted.
    if (!(e instanceof StoreUnreadableError)) throw e;
    reportError(e);
    return EXIT.failure;
  }
}
