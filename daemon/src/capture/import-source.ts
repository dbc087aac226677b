// One import's helper (`capture --read`) seen the way retention sees the live supervisor, so an
// import is held to the store's capacity by the same ledger.
import { EventEmitter } from 'node:events';
import type { Helper } from './helper.js';
import type { HelperCommand, StatsMessage } from './protocol.js';
import type { SupervisorEvents } from './supervisor.js';

export class ImportSource extends EventEmitter<SupervisorEvents> {
  constructor(
    private readonly helper: Helper,
    label: string,
  ) {
    super();
    let last: StatsMessage | undefined;
    helper.on('message', (m) => {
      this.emit('message', m);
      if (m.type === 'stats') {
        last = m;
        this.emit('stats', label, m);
      } else if (m.type === 'file_closed') this.emit('file_closed', m);
    });
    helper.on('exit', () => this.emit('helper_exit', label, last));
  }

  command(_iface: string, line: HelperCommand): void {
    this.helper.sendLine(line);
  }
}
