// One running qe-capture process: its arguments, its messages, its end.
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import type { Config } from '../config/config.js';
import { launchHelper, type HelperProcess } from './launch.js';
import { parseHelperLine, settingCommands, type HelperCommand, type HelperMessage, type HelperSettings } from './protocol.js';

export type HelperSource = { live: string; bufferBytes: number } | { file: string; label: string };

export function helperSettings(config: Config): HelperSettings {
  return {
    fileSizeBytes: config.storage.fileSizeBytes,
    fileDurationMs: config.storage.fileDurationMs,
    flushIntervalMs: config.storage.flushIntervalMs,
    filter: config.capture.filter,
  };
}

export function helperArgs(config: Config, source: HelperSource): string[] {
  const s = config.storage;
  const args =
    'live' in source
      ? ['--iface', source.live, '--buffer', String(source.bufferBytes)]
      : ['--read', source.file, '--iface', source.label];
  for (const p of s.paths) args.push('--dir', p);
  args.push('--snaplen', String(config.capture.snaplen));
  args.push('--file-size', String(s.fileSizeBytes));
  args.push('--flush-ms', String(s.flushIntervalMs));
  if (s.fileDurationMs) args.push('--file-duration-ms', String(s.fileDurationMs));
  if (config.capture.filter) args.push('--filter', config.capture.filter);
  if (!config.capture.promiscuous) args.push('--no-promisc');
  if (!s.fsync) args.push('--no-fsync');
  // Always passed, `[]` as an empty list: the helper's own default (no index) must not decide.
  args.push('--index-fields', config.index.fields.join(','));
  if (config.index.fields.length) args.push('--index-block-size', String(config.index.blockSizeBytes));
  if (config.flows.enabled) args.push('--flows');
  // Imports stay buffered: they are measured against page-cache copies and gain nothing from it.
  if (s.directIo && 'live' in source) args.push('--direct-io');
  return args;
}

export interface HelperEvents {
  message: [HelperMessage];
  exit: [{ code: number | null; signal: NodeJS.Signals | null; stderr: string }];
}

/** What the supervisor needs of a running helper: a process here, a fake in tests of reload. */
export interface RunningHelper extends EventEmitter<HelperEvents> {
  send(settings: HelperSettings): void;
  sendLine(line: HelperCommand): void;
  stop(): Promise<void>;
}

/** Starts one helper with these arguments. */
export type HelperLauncher = (args: string[]) => RunningHelper;

export const launchProcess: HelperLauncher = (args) => new Helper(args);

export class Helper extends EventEmitter<HelperEvents> implements RunningHelper {
  readonly child: HelperProcess;
  private stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    super();
    this.child = launchHelper(args);
    this.child.stdin.on('error', () => {}); // a helper that died is reported by 'exit'
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4096);
    });
    const lines = createInterface({ input: this.child.stdout });
    lines.on('line', (line) => {
      let msg: HelperMessage;
      try {
        msg = parseHelperLine(line);
      } catch {
        msg = { type: 'error', iface: '?', code: 'protocol', message: `unreadable helper message: ${line.slice(0, 200)}`, fatal: false };
      }
      this.emit('message', msg);
    });
    const stdoutClosed = new Promise<void>((r) => lines.once('close', r));
    this.exited = this.child.exited.then(async (status) => {
      // Deliver every message already written before announcing the exit.
      await stdoutClosed;
      if (this.child.startError) this.stderr += this.child.startError;
      this.emit('exit', { ...status, stderr: this.stderr });
      return status;
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(settings: HelperSettings): void {
    for (const line of settingCommands(settings)) this.sendLine(line);
  }

  sendLine(line: HelperCommand): void {
    if (this.child.running) this.child.stdin.write(`${line}\n`);
  }

  /** Asks for a clean stop (files closed and renamed); kills after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.child.running) return this.exited.then(() => {});
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
