// Runs one qe-capture per configured interface, restarts the ones that fail with backoff while
// the others keep capturing, and keeps the per-interface counters across restarts.
import { EventEmitter } from 'node:events';
import type { Config, InterfaceConfig } from '../config/config.js';
import { helperArgs, helperSettings, launchProcess, type HelperLauncher, type RunningHelper } from './helper.js';
import { ElementsFile, helperElements } from '../elements/helper-elements.js';
import { helperCommand, HelperExit, type ElementsMessage, type FileClosedMessage, type HelperCommand, type HelperMessage, type StatsMessage } from './protocol.js';

export const COUNTER_NAMES = ['received', 'written', 'written_bytes', 'filtered', 'kernel_drops', 'if_drops', 'writer_drops', 'write_errors', 'store_full_drops', 'cpu_us'] as const;
export type Counters = Record<(typeof COUNTER_NAMES)[number], number>;

export const zeroCounters = (): Counters => Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as Counters;

export function addCounters(a: Counters, b: Counters): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, a[n] + b[n]])) as Counters;
}

export function countersOf(m: StatsMessage): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, m[n]])) as Counters;
}

export interface InterfaceState {
  name: string;
  capturing: boolean;
  restarts: number;
  lastError?: string;
  /** Totals of helpers that have ended, so restarts never reset what users see. */
  base: Counters;
  current: Counters;
  openFile?: string;
}

const MAX_BACKOFF_MS = 30_000;

export interface SupervisorEvents {
  message: [HelperMessage];
  capturing: [string];
  down: [string, string];
  file_closed: [FileClosedMessage];
  stats: [string, StatsMessage];
  /** A helper's per-element counters (once a second while elements are configured). */
  elements: [string, ElementsMessage];
  /** A helper ended; its last stats say what it appended (retention settles its account). */
  helper_exit: [string, StatsMessage | undefined];
  log: ['info' | 'warn' | 'error', string];
}

export class CaptureSupervisor extends EventEmitter<SupervisorEvents> {
  private helpers = new Map<string, RunningHelper>();
  private states = new Map<string, InterfaceState>();
  private timers = new Map<string, NodeJS.Timeout>();
  private stopping = false;
  /** Interfaces stopped to start again at once with new arguments (a changed index.fields). */
  private restarting = new Set<string>();
  /** Files closed this run, kept only when asked for (--summary): a daemon running for months closes millions. */
  readonly closedFiles: FileClosedMessage[] = [];
  closedCount = 0;
  keepClosedFiles = true;
  /** Written when the config first has elements; helpers are pointed at it. */
  private elementsFile?: ElementsFile;
  private hasElements = false;

  constructor(
    private config: Config,
    /** Extra helper arguments decided at each start (the linear-retention quota). */
    private extraArgs: (iface: string) => Promise<string[]> | string[] = () => [],
    /** Starts each helper: a process, or a fake where reload is tested without one. */
    private readonly launch: HelperLauncher = launchProcess,
  ) {
    super();
  }

  /** Sends a control line to one interface's running helper. */
  command(iface: string, line: HelperCommand): void {
    this.helpers.get(iface)?.sendLine(line);
  }

  start(): void {
    this.updateElements();
    for (const itf of this.config.capture.interfaces) void this.startInterface(itf);
  }

  totals(name: string): Counters {
    const s = this.states.get(name);
    return s ? addCounters(s.base, s.current) : zeroCounters();
  }

  interfaces(): InterfaceState[] {
    return [...this.states.values()];
  }

  /** Resolves once every interface has started capturing; rejects on a helper that cannot start. */
  waitUntilCapturing(timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const all = this.config.capture.interfaces.every((i) => this.states.get(i.name)?.capturing);
        if (all) {
          cleanup();
          resolve();
        }
      };
      const onDown = (name: string, why: string) => {
        cleanup();
        reject(new Error(`${name}: ${why}`));
      };
      const timer = setTimeout(() => onDown('capture', `not every interface started within ${timeoutMs} ms`), timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('capturing', check);
        this.off('down', onDown);
      };
      this.on('capturing', check);
      this.on('down', onDown);
      check();
    });
  }

  private async startInterface(itf: InterfaceConfig): Promise<void> {
    const state = this.states.get(itf.name) ?? { name: itf.name, capturing: false, restarts: 0, base: zeroCounters(), current: zeroCounters() };
    this.states.set(itf.name, state);
    const extra = await this.extraArgs(itf.name);
    if (this.stopping) return;
    const elements = this.hasElements ? ['--elements', this.elementsFile!.path] : [];
    const helper = this.launch([...helperArgs(this.config, { live: itf.name, bufferBytes: itf.bufferBytes }), ...elements, ...extra]);
    let lastStats: StatsMessage | undefined;
    const startedAt = Date.now();
    this.helpers.set(itf.name, helper);
    helper.on('message', (m) => {
      this.emit('message', m);
      switch (m.type) {
        case 'started':
          state.capturing = true;
          this.emit('log', 'info', `${itf.name}: capturing (link type ${m.linktype}, snaplen ${m.snaplen})`);
          this.emit('capturing', itf.name);
          break;
        case 'stats':
          state.current = countersOf(m);
          lastStats = m;
          this.emit('stats', itf.name, m);
          break;
        case 'elements':
          this.emit('elements', itf.name, m);
          break;
        case 'file_opened':
          state.openFile = m.path;
          break;
        case 'file_closed':
          this.closedCount++;
          if (this.keepClosedFiles) this.closedFiles.push(m);
          this.emit('file_closed', m);
          break;
        case 'error':
          state.lastError = m.message;
          this.emit('log', m.fatal ? 'error' : 'warn', `${itf.name}: ${m.message}`);
          break;
        default:
          break;
      }
    });
    helper.on('exit', ({ code, signal, stderr }) => {
      state.capturing = false;
      state.openFile = undefined;
      state.base = addCounters(state.base, state.current);
      state.current = zeroCounters();
      this.helpers.delete(itf.name);
      this.emit('helper_exit', itf.name, lastStats);
      if (this.stopping) return;
      if (this.restarting.delete(itf.name)) {
        const now = this.config.capture.interfaces.find((i) => i.name === itf.name);
        if (now) void this.startInterface(now);
        return;
      }
      const why = state.lastError ?? (stderr.trim() || `helper ended (${signal ?? `exit ${code}`})`);
      this.emit('down', itf.name, why);
      if (code === HelperExit.badSetting || code === HelperExit.permission || code === HelperExit.usage) {
        this.emit('log', 'error', `${itf.name}: not capturing: ${why}`);
        return;
      }
      if (Date.now() - startedAt > 60_000) state.restarts = 0;
      const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** state.restarts);
      state.restarts++;
      this.emit('log', 'warn', `${itf.name}: not capturing (${why}); retrying in ${delay / 1000}s`);
      this.timers.set(itf.name, setTimeout(() => {
        this.timers.delete(itf.name);
        if (!this.stopping && this.config.capture.interfaces.some((i) => i.name === itf.name)) void this.startInterface(itf);
      }, delay));
    });
  }

  /** Applies a new config without stopping capture on unchanged interfaces. Returns what needs a restart. */
  async reload(next: Config): Promise<string[]> {
    const prev = this.config;
    this.config = next;
    const needsRestart: string[] = [];
    if (prev.capture.snaplen !== next.capture.snaplen) needsRestart.push('capture.snaplen');
    if (prev.capture.promiscuous !== next.capture.promiscuous) needsRestart.push('capture.promiscuous');
    if (JSON.stringify(prev.storage.paths) !== JSON.stringify(next.storage.paths)) needsRestart.push('storage.paths');
    if (prev.storage.fsync !== next.storage.fsync) needsRestart.push('storage.fsync');
    if (prev.storage.directIo !== next.storage.directIo) needsRestart.push('storage.direct_io');
    // The helper takes its index settings only at start: it closes its file (and that file's
    // complete index) and the next file is indexed the new way, a second's gap in capture at most.
    const indexChanged = JSON.stringify(prev.index) !== JSON.stringify(next.index) || prev.flows.enabled !== next.flows.enabled;
    const names = new Set(next.capture.interfaces.map((i) => i.name));
    // Running helpers re-read the elements file: counting changes without a gap in capture.
    const elementsChanged = this.updateElements();
    for (const [name, helper] of this.helpers) {
      if (!names.has(name)) {
        this.emit('log', 'info', `${name}: removed from the config, stopping`);
        await helper.stop();
        this.states.delete(name);
      } else if (indexChanged) {
        this.emit('log', 'info', `${name}: index.fields, index.block_size or flows.enabled changed, restarting the helper (its open file is closed)`);
        this.restarting.add(name);
        await helper.stop();
      } else {
        helper.send(helperSettings(next));
        if (elementsChanged) helper.sendLine(helperCommand.elements(this.elementsFile!.path));
        const before = prev.capture.interfaces.find((i) => i.name === name);
        const after = next.capture.interfaces.find((i) => i.name === name);
        if (before && after && before.bufferBytes !== after.bufferBytes) needsRestart.push(`capture.buffer (${name})`);
      }
    }
    for (const itf of next.capture.interfaces) {
      if (!this.states.has(itf.name)) {
        this.emit('log', 'info', `${itf.name}: added to the config, starting`);
        void this.startInterface(itf);
      }
    }
    return needsRestart;
  }

  /**
   * Writes the config's elements for the helpers; true when running helpers must re-read them. No
   * file until the config has elements; one emptied later is still re-read (the helpers stop
   * counting).
   */
  private updateElements(): boolean {
    const list = helperElements(this.config);
    if (!this.elementsFile && list.length === 0) return false;
    this.elementsFile ??= new ElementsFile();
    this.hasElements = list.length > 0;
    return this.elementsFile.update(list);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.all([...this.helpers.values()].map((h) => h.stop()));
  }
}
