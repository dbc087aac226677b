// The run state of a QEMU process through its QMP socket: a guest QEMU paused after "KVM internal
// error" writes nothing more and never exits, so only QEMU itself can say it has stopped.
import { connect } from 'node:net';

/** QEMU's RunState ('running', 'internal-error', 'paused', 'guest-panicked', 'shutdown' …), or
 * undefined when the socket does not answer within timeoutMs (QEMU gone or not listening yet). */
export function qmpStatus(socket: string, timeoutMs = 3000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let buf = '';
    let sentQuery = false;
    const done = (v: string | undefined) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    s.on('error', () => done(undefined));
    s.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: { QMP?: unknown; return?: { status?: string }; error?: unknown };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return done(undefined);
        }
        if (msg.QMP) s.write('{"execute":"qmp_capabilities"}\n');
        else if (msg.return && !sentQuery) {
          sentQuery = true;
          s.write('{"execute":"query-status"}\n');
        } else if (msg.return?.status) return done(msg.return.status);
        else if (msg.error) return done(undefined);
      }
    });
  });
}

/** The run states in which the guest will make no more progress by itself. */
export const STOPPED_STATES = new Set(['internal-error', 'io-error', 'guest-panicked', 'shutdown', 'paused']);
