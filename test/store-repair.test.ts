import { execFileSync, spawn } from 'node:child_process';
import { existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { buildPcap, encodeRecordHeader, GLOBAL_HEADER_LEN } from '../daemon/src/pcap/format.js';
import { formatFileName } from '../daemon/src/store/filename.js';
import { removeOrphanIndexes, repairStore } from '../daemon/src/store/repair.js';
import { indexPathFor } from '../daemon/src/index/format.js';
import { checkIndex } from '../daemon/src/store/index-check.js';
import { DEFAULT_INDEX, closedFiles } from './lib/index-fixture.js';
import { BASE_NS, MS, recordEnds, tempDir, traffic, writeCaptureFile } from './lib/fixture.js';
import { root } from './lib/cli.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));
function dir(base?: string): string {
  const t = tempDir('repair', base);
  cleanups.push(t.cleanup);
  return t.dir;
}

function tcpdumpCount(path: string): number {
  const out = execFileSync('tcpdump', ['-nn', '-r', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

describe('repairStore', () => {
  it('cuts a part file to its last whole record at every possible crash offset, keeping those bytes exactly', () => {
    const packets = traffic(BASE_NS, 6, 42);
    const whole = buildPcap(packets);
    const ends = recordEnds(packets);
    const name = formatFileName(packets[0]!.tsNs, 'eth0');
    // A thousand repairs each fsync twice: on a tmpfs that costs nothing.
    const d = dir(existsSync('/dev/shm') ? '/dev/shm' : undefined);
    for (let cut = 0; cut <= whole.length; cut++) {
      const part = join(d, `${name}.part`);
      writeFileSync(part, whole.subarray(0, cut));
      const results = repairStore([d]);
      expect(results).toHaveLength(1);
      const kept = ends.filter((e) => e <= cut);
      const final = join(d, name);
      if (kept.length === 0) {
        expect(results[0]!.outcome, `cut at ${cut}`).toBe('removed');
        expect(readdirSync(d)).toEqual([]);
        continue;
      }
      const wholeEnd = kept[kept.length - 1]!;
      expect(results[0], `cut at ${cut}`).toMatchObject({
        outcome: 'repaired',
        finalPath: final,
        packets: kept.length,
        keptBytes: wholeEnd,
        cutBytes: cut - wholeEnd,
      });
      expect(readdirSync(d)).toEqual([name]);
      expect(readFileSync(final).equals(whole.subarray(0, wholeEnd)), `cut at ${cut}`).toBe(true);
      rmFile(final);
    }
  });

  it('leaves files tcpdump reads whole, and is a no-op when run again', () => {
    const d = dir();
    const f = writeCaptureFile(d, 'eth1', traffic(BASE_NS, 50, 7), { partial: true, partialTail: 9 });
    const first = repairStore([d]);
    expect(first.map((r) => r.outcome)).toEqual(['repaired']);
    const final = first[0]!.finalPath!;
    expect(tcpdumpCount(final)).toBe(50);
    const before = readFileSync(final);
    expect(repairStore([d])).toEqual([]);
    expect(readFileSync(final).equals(before)).toBe(true);
    expect(readdirSync(d)).toEqual([f.path.split('/').pop()!.replace(/\.part$/, '')]);
  });

  it('cuts the zero-filled tail a power loss can leave', () => {
    const d = dir();
    const packets = traffic(BASE_NS, 10, 3);
    const f = writeCaptureFile(d, 'eth0', packets, { partial: true });
    const whole = readFileSync(f.path);
    writeFileSync(f.path, Buffer.concat([whole, Buffer.alloc(4096)]));
    const [r] = repairStore([d]);
    expect(r).toMatchObject({ outcome: 'repaired', packets: 10, cutBytes: 4096 });
    expect(readFileSync(r!.finalPath!).equals(whole)).toBe(true);
  });

  it('cuts at a record header that cannot be real (timestamp far from the file, caplen > origlen)', () => {
    const d = dir();
    const packets = traffic(BASE_NS, 5, 4);
    const data = Buffer.alloc(60, 1);
    for (const bad of [
      { tsNs: BASE_NS - 400n * 86_400n * 1_000_000_000n, caplen: 60, origlen: 60 },
      { tsNs: BASE_NS + 10n * MS, caplen: 60, origlen: 40 },
    ]) {
      const f = writeCaptureFile(d, 'eth0', packets, { partial: true });
      const whole = readFileSync(f.path);
      writeFileSync(f.path, Buffer.concat([whole, encodeRecordHeader(bad), data]));
      utimesSync(f.path, new Date(Number((BASE_NS + 60_000n * MS) / MS)), new Date(Number((BASE_NS + 60_000n * MS) / MS)));
      const [r] = repairStore([d]);
      expect(r).toMatchObject({ outcome: 'repaired', packets: 5, cutBytes: 16 + 60 });
      expect(readFileSync(r!.finalPath!).equals(whole)).toBe(true);
      rmFile(r!.finalPath!);
    }
  });

  it('never replaces a closed file that already has the name: the repaired one gets ~1', () => {
    const d = dir();
    const packets = traffic(BASE_NS, 8, 5);
    const closed = writeCaptureFile(d, 'eth0', packets);
    const closedBytes = readFileSync(closed.path);
    const other = traffic(BASE_NS, 3, 6); // same first timestamp, other content
    const part = writeCaptureFile(d, 'eth0', other, { partial: true, partialTail: 3 });
    const [r] = repairStore([d]);
    expect(r!.outcome).toBe('repaired');
    expect(r!.finalPath).toBe(join(d, formatFileName(BASE_NS, 'eth0', 1)));
    expect(readFileSync(closed.path).equals(closedBytes)).toBe(true);
    expect(readFileSync(r!.finalPath!).equals(buildPcap(other))).toBe(true);
    expect(existsSync(part.path)).toBe(false);
  });

  it('finishes a repair interrupted between link and unlink without a duplicate', () => {
    const d = dir();
    const part = writeCaptureFile(d, 'eth0', traffic(BASE_NS, 4, 8), { partial: true });
    const final = part.path.replace(/\.part$/, '');
    linkSync(part.path, final); // the state a crash after link() leaves
    const [r] = repairStore([d]);
    expect(r).toMatchObject({ outcome: 'repaired', finalPath: final });
    expect(readdirSync(d)).toEqual([final.split('/').pop()]);
  });

  it('removes part files that hold nothing, and leaves alone what is not a pcap', () => {
    const d = dir();
    const t = formatFileName(BASE_NS, 'eth0');
    writeFileSync(join(d, `${t.replace('eth0', 'eth1')}.part`), Buffer.alloc(10)); // header cut short
    writeFileSync(join(d, `${t.replace('eth0', 'eth2')}.part`), Buffer.alloc(8192)); // zero blocks
    writeFileSync(join(d, `${t.replace('eth0', 'eth3')}.part`), buildPcap([])); // header only
    const foreign = join(d, `${t.replace('eth0', 'eth4')}.part`);
    writeFileSync(foreign, 'not a capture at all, but someone may want it back\n');
    const results = repairStore([d]);
    expect(results.map((r) => [r.path.split('_').pop(), r.outcome])).toEqual([
      ['eth1.pcap.part', 'removed'],
      ['eth2.pcap.part', 'removed'],
      ['eth3.pcap.part', 'removed'],
      ['eth4.pcap.part', 'skipped'],
    ]);
    expect(readdirSync(d)).toEqual([foreign.split('/').pop()]);
    expect(readFileSync(foreign, 'utf8')).toContain('someone may want it back');
  });

  it('repairs a big-endian microsecond part file as it is', () => {
    const d = dir();
    const f = writeCaptureFile(d, 'eth0', traffic(BASE_NS, 20, 9), { partial: true });
    // tcpdump writes microsecond files; swapping to big-endian by hand covers the other byte order.
    const micro = join(d, 'micro.pcap');
    execFileSync('tcpdump', ['-r', f.path, '-w', micro], { stdio: 'ignore' });
    const le = readFileSync(micro);
    const be = Buffer.from(le);
    for (const [off, size] of [[0, 4], [4, 2], [6, 2], [8, 4], [12, 4], [16, 4], [20, 4]] as const) swap(be, off, size);
    for (let off = GLOBAL_HEADER_LEN; off < be.length; ) {
      const caplen = le.readUInt32LE(off + 8);
      for (let i = 0; i < 4; i++) swap(be, off + i * 4, 4);
      off += 16 + caplen;
    }
    rmFile(f.path);
    rmFile(micro);
    writeFileSync(f.path, Buffer.concat([be, Buffer.alloc(5, 0x77)]));
    const [r] = repairStore([d]);
    expect(r).toMatchObject({ outcome: 'repaired', packets: 20, cutBytes: 5 });
    expect(readFileSync(r!.finalPath!).equals(be)).toBe(true);
    expect(tcpdumpCount(r!.finalPath!)).toBe(20);
  });

  it('leaves a part file alone while another process holds its lock (a live writer), and repairs it once that process is gone', async () => {
    const d = dir();
    const f = writeCaptureFile(d, 'eth0', traffic(BASE_NS, 5, 11), { partial: true, partialTail: 3 });
    const before = readFileSync(f.path);
    // flock(1) takes the same lock qe-capture's writer holds on its open part file.
    const holder = spawn('flock', ['--exclusive', '--no-fork', f.path, 'sh', '-c', 'echo locked; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    cleanups.push(() => holder.kill('SIGKILL'));
    await new Promise((resolve) => holder.stdout.once('data', resolve));
    expect(repairStore([d])).toEqual([
      { path: f.path, outcome: 'busy', packets: 0, keptBytes: 0, cutBytes: 0, reason: 'another process is writing it (its writer holds the lock)' },
    ]);
    expect(readFileSync(f.path).equals(before)).toBe(true);
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    expect(repairStore([d])).toMatchObject([{ path: f.path, outcome: 'repaired', packets: 5, cutBytes: 3 }]);
  });

  it('does nothing to closed files and ignores store paths that do not exist yet', () => {
    const d = dir();
    const f = writeCaptureFile(d, 'eth0', traffic(BASE_NS, 5, 10));
    truncateSync(f.path, statSync(f.path).size - 3); // damaged, but closed: not repair's to cut
    const size = statSync(f.path).size;
    expect(repairStore([d, join(d, 'missing')])).toEqual([]);
    expect(statSync(f.path).size).toBe(size);
  });
});

describe('repairStore and what else sits in the store folder', () => {
  it('never follows a .part that is a symbolic link: the file it points to, anywhere, is left whole', () => {
    const d = dir();
    const elsewhere = dir();
    // A torn capture outside the store: repair through the link would cut its last 7 bytes.
    const victim = writeCaptureFile(elsewhere, 'eth0', traffic(BASE_NS, 5, 3), { partial: true, partialTail: 7 });
    const before = readFileSync(victim.path);
    const link = join(d, `${formatFileName(BASE_NS, 'eth0')}.part`);
    symlinkSync(victim.path, link);
    const results = repairStore([d]);
    expect(results).toMatchObject([{ path: link, outcome: 'skipped', reason: 'a symbolic link, not a regular file' }]);
    expect(readFileSync(victim.path).equals(before)).toBe(true);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it('a directory or a dangling link named like a .part is skipped and reported, and real part files are still repaired', () => {
    const d = dir();
    const real = writeCaptureFile(d, 'eth0', traffic(BASE_NS, 4, 5), { partial: true, partialTail: 3 });
    mkdirSync(join(d, `${formatFileName(BASE_NS + MS, 'eth1')}.part`));
    symlinkSync(join(d, 'nowhere'), join(d, `${formatFileName(BASE_NS + 2n * MS, 'eth2')}.part`));
    const results = repairStore([d]);
    expect(results.map((r) => [r.path.split('_').pop(), r.outcome, r.reason])).toEqual([
      ['eth0.pcap.part', 'repaired', expect.any(String)],
      ['eth1.pcap.part', 'skipped', 'a directory, not a regular file'],
      ['eth2.pcap.part', 'skipped', 'a symbolic link, not a regular file'],
    ]);
    expect(results[0]!.finalPath).toBe(real.path.slice(0, -'.part'.length));
  });

  it('a FIFO named like a .part does not block start-up', async () => {
    const d = dir();
    const fifo = join(d, `${formatFileName(BASE_NS, 'eth0')}.part`);
    execFileSync('mkfifo', [fifo]);
    // In a child: a repair that blocks on the FIFO's open would block this test process for good.
    const script = `import(${JSON.stringify(join(root, 'build/daemon/src/store/repair.js'))}).then((m) => console.log(JSON.stringify(m.repairStore([${JSON.stringify(d)}]))))`;
    const res = await execa(process.execPath, ['-e', script], { timeout: 10_000, reject: false });
    expect(res.timedOut, 'repair blocked on the FIFO').toBe(false);
    expect(JSON.parse(res.stdout)).toMatchObject([{ path: fifo, outcome: 'skipped', reason: 'a FIFO, not a regular file' }]);
  });
});

function swap(b: Buffer, off: number, size: number): void {
  b.subarray(off, off + size).reverse();
}

function rmFile(p: string): void {
  unlinkSync(p);
}

describe('repair and index files', () => {
  const want = DEFAULT_INDEX;
  it('repair drops the index of a repaired `.part` (the closed file is indexed afresh) and removes orphans, never a temporary index beside its pcap', () => {
    const d = dir();
    const [closed] = closedFiles(d, 1);
    const part = writeCaptureFile(d, 'eth1', traffic(BASE_NS + 3_600_000n * MS, 30, 9), { partial: true, partialTail: 11 });
    writeFileSync(indexPathFor(part.path), Buffer.alloc(200)); // what the writer flushed before the crash
    const tmp = indexPathFor(closed!.path) + '.tmp';
    writeFileSync(tmp, 'being written');
    const orphan = join(d, '20240501T090000.000000000Z_eth9.pcap.qeidx');
    writeFileSync(orphan, 'z');
    const [r] = repairStore([d]);
    expect(r).toMatchObject({ outcome: 'repaired', packets: 30 });
    expect(existsSync(indexPathFor(part.path))).toBe(false);
    expect(checkIndex(r!.finalPath!, want)).toEqual({ state: 'missing' });
    expect(removeOrphanIndexes([d])).toEqual([orphan]);
    expect(existsSync(tmp)).toBe(true);
  });
});
