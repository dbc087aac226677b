// A capture helper that runs nothing: it records the commands the daemon sends and says it
// stopped when asked, for tests of the daemon's own behaviour (reload, stop, what it reports).
import { EventEmitter } from 'node:events';
import type { HelperEvents, RunningHelper } from '../../daemon/src/capture/helper.js';
import { settingCommands, type HelperCommand, type HelperSettings } from '../../daemon/src/capture/protocol.js';

export class FakeHelper extends EventEmitter<HelperEvents> implements RunningHelper {
  readonly lines: string[] = [];
  stopped = false;
  constructor(readonly args: string[]) {
    super();
  }
  /** A fake started as a daemon starts a helper: it says `started` once its capture is open, as
   *  the real one does. */
  static launch(args: string[]): FakeHelper {
    const h = new FakeHelper(args);
    setImmediate(() => h.emit('message', { type: 'started', iface: h.iface, linktype: 1, snaplen: 65535, source: 'live', pid: 1 }));
    return h;
  }
  get iface(): string {
    return this.args[this.args.indexOf('--iface') + 1]!;
  }
  arg(name: string): string | undefined {
    const i = this.args.indexOf(name);
    return i < 0 ? undefined : this.args[i + 1];
  }
  send(s: HelperSettings): void {
    this.lines.push(...settingCommands(s));
  }
  sendLine(line: HelperCommand): void {
    this.lines.push(line);
  }
  async stop(): Promise<void> {
    this.stopped = true;
    this.emit('exit', { code: 0, signal: null, stderr: '' });
  }
}
