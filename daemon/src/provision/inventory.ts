// What block devices a box has: `lsblk --json --bytes` on this machine, or the same JSON saved
// from another box (--inventory FILE) so a plan can be made before it arrives. lsblk takes
// filesystem and partition-table signatures from udev, which a container or a fresh install may
// not have, so on this machine every device is also probed directly (`blkid -p`).
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export interface BlockDevice {
  name: string;
  path: string;
  sizeBytes: number;
  /** lsblk's TYPE: disk, loop, part, raid0, raid10, raid6, lvm, rom … */
  type: string;
  fstype: string | null;
  label: string | null;
  uuid: string | null;
  pttype: string | null;
  /** Where it is mounted (empty when not). */
  mountpoints: string[];
  model: string | null;
  rotational: boolean | null;
  readOnly: boolean;
  removable: boolean;
  children: BlockDevice[];
}

export interface Inventory {
  /** Where it came from, for messages: "lsblk" or the file name. */
  source: string;
  devices: BlockDevice[];
}

const LSBLK_COLUMNS = 'NAME,PATH,SIZE,TYPE,FSTYPE,LABEL,UUID,PTTYPE,MOUNTPOINTS,MODEL,ROTA,RO,RM';

// lsblk's JSON, as util-linux 2.38 prints it; older versions print MOUNTPOINT (one) and numbers as
// strings, and a hand-written inventory may leave out everything but name and size.
const sizeField = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)]);
const flag = z.union([z.boolean(), z.enum(['0', '1']).transform((v) => v === '1'), z.null()]).optional();
interface RawDevice {
  name: string;
  path?: string | undefined;
  size: number;
  type?: string | undefined;
  fstype?: string | null | undefined;
  label?: string | null | undefined;
  uuid?: string | null | undefined;
  pttype?: string | null | undefined;
  mountpoints?: (string | null)[] | undefined;
  mountpoint?: string | null | undefined;
  model?: string | null | undefined;
  rota?: boolean | null | undefined;
  ro?: boolean | null | undefined;
  rm?: boolean | null | undefined;
  children?: RawDevice[] | undefined;
}
const rawDevice: z.ZodType<RawDevice> = z.lazy(() =>
  z.object({
    name: z.string().min(1),
    path: z.string().optional(),
    size: sizeField,
    type: z.string().optional(),
    fstype: z.string().nullable().optional(),
    label: z.string().nullable().optional(),
    uuid: z.string().nullable().optional(),
    pttype: z.string().nullable().optional(),
    mountpoints: z.array(z.string().nullable()).optional(),
    mountpoint: z.string().nullable().optional(),
    model: z.string().nullable().optional(),
    rota: flag,
    ro: flag,
    rm: flag,
    children: z.array(rawDevice).optional(),
  }),
);
const lsblkSchema = z.object({ blockdevices: z.array(rawDevice) });

function normalize(d: RawDevice): BlockDevice {
  const mounts = [...(d.mountpoints ?? []), d.mountpoint ?? null].filter((m): m is string => typeof m === 'string' && m !== '');
  return {
    name: d.name,
    path: d.path ?? `/dev/${d.name}`,
    sizeBytes: d.size,
    type: d.type ?? 'disk',
    fstype: d.fstype ?? null,
    label: d.label ?? null,
    uuid: d.uuid ?? null,
    pttype: d.pttype ?? null,
    mountpoints: [...new Set(mounts)],
    model: d.model?.trim() || null,
    rotational: d.rota ?? null,
    readOnly: d.ro ?? false,
    removable: d.rm ?? false,
    children: (d.children ?? []).map(normalize),
  };
}

export class InventoryError extends Error {
  override name = 'InventoryError';
}

/** lsblk JSON (or YAML of the same shape) → devices; throws InventoryError naming what is wrong. */
export function parseInventory(text: string, source: string): Inventory {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new InventoryError(`${source}: does not parse as JSON or YAML (${(e as Error).message.split('\n')[0]}); fix: save it with lsblk --json --bytes -o ${LSBLK_COLUMNS}`);
  }
  const parsed = lsblkSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InventoryError(
      `${source}: ${issue.path.join('.') || '(top level)'}: ${issue.message}; fix: save it with lsblk --json --bytes -o ${LSBLK_COLUMNS} (every device needs at least "name" and "size" in bytes)`,
    );
  }
  return { source, devices: parsed.data.blockdevices.map(normalize) };
}

export async function readInventoryFile(path: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new InventoryError(`--inventory ${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix: name the file saved from lsblk --json --bytes on that box`);
  }
  return parseInventory(text, path);
}

/** Signatures as `blkid -p` (low-level probe, no cache, no udev) finds them on the device itself. */
export async function probeSignatures(path: string): Promise<{ fstype: string | null; label: string | null; uuid: string | null; pttype: string | null }> {
  const r = await execa('blkid', ['-p', '-o', 'export', path], { reject: false });
  const kv = new Map(r.stdout.split('\n').map((l) => l.split('=', 2) as [string, string]).filter((p) => p.length === 2));
  return { fstype: kv.get('TYPE') ?? null, label: kv.get('LABEL') ?? null, uuid: kv.get('UUID') ?? null, pttype: kv.get('PTTYPE') ?? null };
}

async function enrich(d: BlockDevice): Promise<BlockDevice> {
  const children = await Promise.all(d.children.map(enrich));
  if (d.fstype && d.uuid) return { ...d, children };
  const p = d.sizeBytes > 0 ? await probeSignatures(d.path) : { fstype: null, label: null, uuid: null, pttype: null };
  return { ...d, fstype: d.fstype ?? p.fstype, label: d.label ?? p.label, uuid: d.uuid ?? p.uuid, pttype: d.pttype ?? p.pttype, children };
}

/** This machine's block devices, probed. */
export async function readLocalInventory(): Promise<Inventory> {
  const r = await execa('lsblk', ['--json', '--bytes', '-o', LSBLK_COLUMNS]);
  const inv = parseInventory(r.stdout, 'lsblk');
  return { source: 'lsblk', devices: await Promise.all(inv.devices.map(enrich)) };
}
