// The kernel's view of network links, /sys/class/net, read in one place. Every function takes the
// directory to read as `root`, so tests point it at a fixture tree (test/fixtures/sys-class-net)
// and first boot can read a mounted image's. Absent links and attributes are undefined, not errors:
// a link can vanish between listing and reading, and `speed` fails on a link that is down.
import { readFileSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const SYS_CLASS_NET = '/sys/class/net';

/** A link name as Linux allows it: no '/', not '.' or '..' (so it cannot leave `root`). */
const isLinkName = (name: string) => name.length > 0 && !name.includes('/') && name !== '.' && name !== '..' && !name.includes('\0');

/** Every link the kernel has, sorted by name; [] when `root` cannot be read. */
export async function linkNames(root = SYS_CLASS_NET): Promise<string[]> {
  return (await readdir(root).catch(() => [] as string[])).sort();
}

/** One attribute file of a link (operstate, address, ifindex, statistics/rx_packets …), trimmed. */
export async function linkAttr(name: string, attr: string, root = SYS_CLASS_NET): Promise<string | undefined> {
  if (!isLinkName(name)) return undefined;
  return readFile(join(root, name, attr), 'utf8').then((t) => t.trim(), () => undefined);
}

/** The same, synchronously: for the watchdog, which decides within one timer tick. */
export function linkAttrSync(name: string, attr: string, root = SYS_CLASS_NET): string | undefined {
  if (!isLinkName(name)) return undefined;
  try {
    return readFileSync(join(root, name, attr), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A number attribute (ifindex, speed, counters); undefined when absent or not a number. */
function toNumber(text: string | undefined): number | undefined {
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  return Number(text);
}

export async function linkNumber(name: string, attr: string, root = SYS_CLASS_NET): Promise<number | undefined> {
  return toNumber(await linkAttr(name, attr, root));
}

/** The kernel's receive counter: it advances whenever the link carries packets. */
export function rxPackets(name: string, root = SYS_CLASS_NET): number | undefined {
  return toNumber(linkAttrSync(name, 'statistics/rx_packets', root));
}

export interface LinkInfo {
  state: string;
  /** undefined when the driver does not say (virtual links, a link that is down). */
  speedMbps?: number;
  mac?: string;
}

export async function linkInfo(name: string, root = SYS_CLASS_NET): Promise<LinkInfo> {
  const speed = await linkNumber(name, 'speed', root);
  const mac = await linkAttr(name, 'address', root);
  return {
    state: (await linkAttr(name, 'operstate', root)) ?? 'unknown',
    ...(speed !== undefined && speed > 0 ? { speedMbps: speed } : {}),
    ...(mac ? { mac } : {}),
  };
}

/** Physical NICs in the order the hardware presents them (by ifindex): virtual links and lo have
 *  no `device`. */
export async function physicalLinks(root = SYS_CLASS_NET): Promise<string[]> {
  const out: { name: string; index: number }[] = [];
  for (const name of await linkNames(root)) {
    if (name === 'lo') continue;
    if (!(await stat(join(root, name, 'device')).then(() => true, () => false))) continue;
    out.push({ name, index: (await linkNumber(name, 'ifindex', root)) ?? 0 });
  }
  return out.sort((a, b) => a.index - b.index).map((n) => n.name);
}
