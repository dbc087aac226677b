// Running the real qe-packets command and the real capture in tests.
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { parsePcap, type PcapRecord } from '../../daemon/src/pcap/format.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const cliPath = join(root, 'build', 'daemon', 'src', 'cli.js');
export const helperPath = join(root, 'build', 'native', 'qe-capture');
export const extractPath = join(root, 'build', 'native', 'qe-extract');

export function cli(args: string[], opts: { reject?: boolean; timeout?: number; input?: string } = {}) {
  return execa(process.execPath, [cliPath, ...args], { reject: opts.reject ?? false, timeout: opts.timeout ?? 60_000, all: true, ...(opts.input !== undefined ? { input: opts.input } : {}) });
}

export async function tempDir(prefix = 'qe-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface ConfigInput {
  interfaces?: string[];
  paths: string[];
  filter?: string;
  snaplen?: number;
  file_size?: string;
  file_duration?: string;
  capacity?: string;
  flush_interval?: string;
  buffer?: string;
  mode?: 'circular' | 'linear';
  rescan_interval?: string;
  fsync?: boolean;
  direct_io?: boolean;
  /** index.fields (default: the schema's); [] turns the index off. */
  index_fields?: string[];
  index_block_size?: string;
  /** flows.enabled (default: the schema's, true). */
  flows?: boolean;
  /** Default: any free port on loopback, so tests never collide. */
  metrics_listen?: string | false;
  /** api.listen; default: any free port on loopback (never the appliance's 8443). */
  api_listen?: string | false;
  api_tls?: { cert: string; key: string };
  api_max_extractions?: number;
  /** Default: control.sock in the test's directory. */
  control_socket?: string;
  /** Extra YAML appended as is (e.g. a health: section). */
  extra?: string;
}

export async function writeConfig(dir: string, c: ConfigInput): Promise<string> {
  const lines = [
    'capture:',
    `  interfaces: [${(c.interfaces ?? []).join(', ')}]`,
    ...(c.filter !== undefined ? [`  filter: ${JSON.stringify(c.filter)}`] : []),
    `  buffer: ${c.buffer ?? '32MiB'}`,
    ...(c.snaplen !== undefined ? [`  snaplen: ${c.snaplen}`] : []),
    'storage:',
    `  paths: [${c.paths.join(', ')}]`,
    `  capacity: ${c.capacity ?? '1GiB'}`,
    `  file_size: ${c.file_size ?? '64MiB'}`,
    ...(c.file_duration ? [`  file_duration: ${c.file_duration}`] : []),
    `  flush_interval: ${c.flush_interval ?? '1s'}`,
    ...(c.mode ? [`  mode: ${c.mode}`] : []),
    ...(c.rescan_interval ? [`  rescan_interval: ${c.rescan_interval}`] : []),
    ...(c.fsync !== undefined ? [`  fsync: ${c.fsync}`] : []),
    ...(c.direct_io !== undefined ? [`  direct_io: ${c.direct_io}`] : []),
    ...(c.index_fields || c.index_block_size
      ? ['index:', ...(c.index_fields ? [`  fields: [${c.index_fields.join(', ')}]`] : []), ...(c.index_block_size ? [`  block_size: ${c.index_block_size}`] : [])]
      : []),
    ...(c.flows !== undefined ? ['flows:', `  enabled: ${c.flows}`] : []),
    'metrics:',
    `  listen: ${c.metrics_listen === false ? 'false' : JSON.stringify(c.metrics_listen ?? '127.0.0.1:0')}`,
    'api:',
    `  listen: ${c.api_listen === false ? 'false' : JSON.stringify(c.api_listen ?? '127.0.0.1:0')}`,
    ...(c.api_tls ? ['  tls:', `    cert: ${JSON.stringify(c.api_tls.cert)}`, `    key: ${JSON.stringify(c.api_tls.key)}`] : []),
    ...(c.api_max_extractions !== undefined ? [`  max_extractions: ${c.api_max_extractions}`] : []),
    'control:',
    `  socket: ${JSON.stringify(c.control_socket ?? join(dir, 'control.sock'))}`,
    ...(c.extra ? [c.extra] : []),
  ];
  const path = join(dir, 'config.yaml');
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** A running `qe-packets capture`; resolves `ready` once every interface captures. */
export class RunningCapture {
  readonly proc: ResultPromise<{ all: true; reject: false }>;
  output = '';
  /** `launcher`: the command that runs the daemon (default: this Node.js and the built cli.js). */
  constructor(configPath: string, extra: string[] = [], env: Record<string, string> = {}, launcher: string[] = [process.execPath, cliPath]) {
    this.proc = execa(launcher[0]!, [...launcher.slice(1), 'capture', '--config', configPath, ...extra], { all: true, reject: false, env });
    this.proc.all!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
  }

  /** The /metrics address the daemon logged (metrics.listen may pick a free port). */
  async metricsUrl(): Promise<string> {
    await this.waitFor(/metrics: (http:\S+)/);
    return /metrics: (http:\S+)/.exec(this.output)![1]!;
  }

  async waitFor(pattern: RegExp | string, timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    const test = () => (typeof pattern === 'string' ? this.output.includes(pattern) : pattern.test(this.output));
    while (!test()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${pattern}; output so far:\n${this.output}`);
      if (this.proc.exitCode !== null) throw new Error(`capture exited (${this.proc.exitCode}) before ${pattern}:\n${this.output}`);
      await sleep(50);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM') {
    this.proc.kill(signal);
    return this.proc;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every record of every closed .pcap file in the directories, files in name (= time) order. */
export async function storeFiles(dirs: string[], iface?: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of dirs) for (const f of await readdir(d)) if (f.endsWith('.pcap') && (!iface || f.includes(`_${iface}`))) out.push(join(d, f));
  return out.sort((a, b) => a.slice(a.lastIndexOf('/')).localeCompare(b.slice(b.lastIndexOf('/'))));
}

export async function readRecords(files: string[]): Promise<PcapRecord[]> {
  const out: PcapRecord[] = [];
  for (const f of files) out.push(...parsePcap(await readFile(f)).records);
  return out;
}

/**
 * Writes the config into `dir`, starts `qe-packets capture` with a summary in `dir/summary.json`,
 * records it in `running` (for cleanup) and waits until every interface captures.
 */
export async function startCapture(dir: string, config: ConfigInput, running: RunningCapture[]): Promise<RunningCapture> {
  const r = new RunningCapture(await writeConfig(dir, config), ['--summary', join(dir, 'summary.json')]);
  running.push(r);
  for (const i of config.interfaces ?? []) await r.waitFor(`${i}: capturing`);
  return r;
}
