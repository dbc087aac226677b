// A real notify socket (AF_UNIX datagram, as systemd creates) that collects sd_notify messages.
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { root, sleep } from './cli.js';

export interface Notification {
  at: number;
  /** KEY=value assignments of one datagram. */
  fields: Record<string, string>;
}

export class NotifySocket {
  readonly path: string;
  readonly received: Notification[] = [];
  private proc: ResultPromise;
  private bound: Promise<void>;

  constructor(dir: string) {
    this.path = join(dir, 'notify.sock');
    this.proc = execa('python3', [join(root, 'test', 'lib', 'notify-socket.py'), this.path], { reject: false, buffer: false });
    let pending = '';
    this.bound = new Promise((resolve) => {
      this.proc.stdout!.on('data', (d: Buffer) => {
        pending += d.toString();
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = JSON.parse(pending.slice(0, nl)) as { bound?: string; at?: number; message?: string };
          pending = pending.slice(nl + 1);
          if (line.bound) resolve();
          else {
            const fields: Record<string, string> = {};
            for (const kv of line.message!.split('\n').filter(Boolean)) {
              const eq = kv.indexOf('=');
              fields[kv.slice(0, eq)] = kv.slice(eq + 1);
            }
            this.received.push({ at: line.at! * 1000, fields });
          }
        }
      });
    });
  }

  ready(): Promise<void> {
    return this.bound;
  }

  with(key: string): Notification[] {
    return this.received.filter((n) => key in n.fields);
  }

  async waitFor(key: string, timeoutMs = 20_000): Promise<Notification> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.with(key)[0];
      if (hit) return hit;
      if (Date.now() > until) throw new Error(`no ${key} on the notify socket within ${timeoutMs} ms; got ${JSON.stringify(this.received.slice(-5))}`);
      await sleep(50);
    }
  }

  close(): void {
    this.proc.kill('SIGKILL');
  }
}
