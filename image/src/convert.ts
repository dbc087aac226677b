// Stage 3 outputs made from a raw disk: qcow2 (KVM, Proxmox, virt-install), streamOptimized VMDK
// (the disk format an OVA carries) and a zstd-compressed raw image with a block map for
// `bmaptool copy` to hardware.
import { rename, rm, stat } from 'node:fs/promises';
import { sh, timed } from './log.js';

async function atomically(out: string, make: (tmp: string) => Promise<void>): Promise<string> {
  const tmp = `${out}.partial`;
  try {
    await make(tmp);
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return out;
}

export function toQcow2(raw: string, out: string): Promise<string> {
  return timed(`qcow2 ${out}`, () =>
    // Compressed clusters: the file holds only the data, and qcow2 stays writable (new writes are
    // stored uncompressed).
    atomically(out, (tmp) => sh`qemu-img convert -q -f raw -O qcow2 -c -o compat=1.1 ${raw} ${tmp}`.then(() => undefined)),
  );
}

/**
 * streamOptimized is the only VMDK subformat an OVA may carry (deflate-compressed grains, written
 * in one pass). The adapter type only fills the descriptor's ddb.adapterType hint; the virtual
 * controller is declared by the OVF descriptor (stage 3, not here).
 */
export function toStreamOptimizedVmdk(raw: string, out: string): Promise<string> {
  return timed(`vmdk ${out}`, () =>
    atomically(out, (tmp) =>
      sh`qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized,adapter_type=lsilogic ${raw} ${tmp}`.then(() => undefined),
    ),
  );
}

/**
 * `name.img.zst` plus `name.img.bmap`: bmaptool finds the map next to the image by stripping the
 * compression suffix, and writes only the mapped blocks (about a third of the disk). The map is
 * made from the sparse raw file, whose holes the build punched with fstrim.
 */
export async function toImgZst(raw: string, outZst: string, outBmap: string, level = Number(process.env.QE_IMAGE_ZSTD_LEVEL ?? 10)): Promise<string[]> {
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new Error(`QE_IMAGE_ZSTD_LEVEL=${process.env.QE_IMAGE_ZSTD_LEVEL}: use an integer from 1 to 19`);
  await timed(`bmap ${outBmap}`, () => atomically(outBmap, (tmp) => sh`bmaptool create -o ${tmp} ${raw}`.then(() => undefined)));
  await timed(`zstd -${level} ${outZst}`, () =>
    // The holes read as zeros, which cost next to nothing compressed; bmaptool skips them when
    // writing, by the map.
    atomically(outZst, (tmp) => sh`zstd -q -f -${level} -T0 ${raw} -o ${tmp}`.then(() => undefined)),
  );
  return [outZst, outBmap];
}

export async function sizeMiB(path: string): Promise<string> {
  return ((await stat(path)).size / 2 ** 20).toFixed(0);
}
