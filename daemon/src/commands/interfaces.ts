import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { linkInfo } from '../util/sys-class-net.js';

export const interfacesHelp = `usage: qe-packets interfaces [--json]

Lists the interfaces libpcap can capture on, with link state, speed and addresses.`;

interface CapDevice {
  name: string;
  description?: string;
  addresses: { addr: string }[];
  flags?: string;
}

export async function interfacesCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
  const require = createRequire(import.meta.url);
  const { Cap } = require('cap') as { Cap: { deviceList(): CapDevice[] } };
  const list = await Promise.all(
    Cap.deviceList()
      .filter((d) => !['any', 'bluetooth-monitor', 'nflog', 'nfqueue', 'dbus-system', 'dbus-session'].includes(d.name))
      .map(async (d) => {
        const link = await linkInfo(d.name);
        return {
          name: d.name,
          state: link.state,
          speedMbps: link.speedMbps ?? null,
          mac: link.mac ?? null,
          addresses: d.addresses.map((a) => a.addr),
        };
      }),
  );
  if (values.json) {
    process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    return 0;
  }
  const rows = [['NAME', 'STATE', 'SPEED', 'MAC', 'ADDRESSES'], ...list.map((i) => [i.name, i.state, i.speedMbps ? `${i.speedMbps}Mb/s` : '-', i.mac ?? '-', i.addresses.join(' ') || '-'])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((v, c) => v.padEnd(widths[c]!)).join('  ').trimEnd()}\n`);
  return 0;
}
