import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

export const interfacesHelp = `usage: qe-packets interfaces [--json]

Lists the interfaces libpcap can capture on, with link state, speed and addresses.`;

interface CapDevice {
  name: string;
  description?: string;
  addresses: { addr: string }[];
  flags?: string;
}

async function sysfs(name: string, file: string): Promise<string | undefined> {
  try {
    return (await readFile(`/sys/class/net/${name}/${file}`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

export async function interfacesCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
  const require = createRequire(import.meta.url);
  const { Cap } = require('cap') as { Cap: { deviceList(): CapDevice[] } };
  const list = await Promise.all(
    Cap.deviceList()
      .filter((d) => !['any', 'bluetooth-monitor', 'nflog', 'nfqueue', 'dbus-system', 'dbus-session'].includes(d.name))
      .map(async (d) => {
        const speed = Number(await sysfs(d.name, 'speed'));
        return {
          name: d.name,
          state: (await sysfs(d.name, 'operstate')) ?? 'unknown',
          speedMbps: Number.isFinite(speed) && speed > 0 ? speed : null,
          mac: (await sysfs(d.name, 'address')) ?? null,
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
