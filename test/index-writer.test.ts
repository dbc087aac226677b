// The index built by qe-capture's writer from the records it writes (never read back): each closed
// file gets its complete index, byte for byte the one qe-index builds from the file on disk; the open
// file's index grows by a segment at each flush; index bytes are counted in the stats.
import { execFileSync, spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseHelperLine, type HelperMessage } from '../daemon/src/capture/protocol.js';
import { IDX_FLAG_COMPLETE, indexPathFor } from '../daemon/src/index/format.js';
import { buildPcap, parsePcap } from '../daemon/src/pcap/format.js';
import { helperPath, root, sleep } from './lib/cli.js';
import { tempDir } from './lib/fixture.js';
import { decodeIndex, tsharkView } from './lib/index-check.js';
import { indexTraffic } from './lib/index-traffic.js';

const qeIndex = join(root, 'build', 'native', 'qe-index');
const FIELDS = 'mac,vlan,ip,port,proto,tunnel';

beforeAll(() => {
  execFileSync('make', ['-s', '-C', join(root, 'daemon', 'native')], { stdio: 'inherit' });
});

function capture(args: string[]): HelperMessage[] {
  const out = execFileSync(helperPath, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return out.trim().split('\n').map(parseHelperLine);
}

const lastStats = (msgs: HelperMessage[]) => msgs.filter((m) => m.type === 'stats').at(-1) as Extract<HelperMessage, { type: 'stats' }>;

describe('qe-capture --index-fields', () => {
  for (const nanos of [true, false])
    it(`an import (${nanos ? 'nanosecond: runs written as they are' : 'microsecond: record by record'}) indexes every file it writes, as qe-index would`, () => {
      const { dir, cleanup } = tempDir('index-writer');
      try {
        const pkts = indexTraffic(4000, 23).map((p) => ({ ...p, tsNs: (p.tsNs / 1000n) * 1000n }));
        const input = join(dir, 'in.pcap');
        writeFileSync(input, buildPcap(pkts, { nanos }));
        const store = join(dir, 'store');
        execFileSync('mkdir', [store]);
        const msgs = capture(['--read', input, '--iface', 'imp', '--dir', store, '--no-fsync', '--file-size', '150000', '--index-fields', FIELDS, '--index-block-size', '4096']);
        expect(msgs.at(-1)).toMatchObject({ type: 'done', exit_code: 0 });
        const files = readdirSync(store).sort();
        const pcaps = files.filter((f) => f.endsWith('.pcap'));
        expect(pcaps.length).toBeGreaterThan(3);
        // One complete index per closed file, nothing else (no .part index, no temporary file).
        expect(files).toEqual([...pcaps, ...pcaps.map((f) => f + '.qeidx')].sort());

        let records = 0;
        let indexBytes = 0;
        let pcapBytes = 0;
        for (const f of pcaps) {
          const path = join(store, f);
          const mine = readFileSync(indexPathFor(path));
          const idx = decodeIndex(mine);
          expect(idx.flags).toBe(IDX_FLAG_COMPLETE);
          const parsed = parsePcap(readFileSync(path));
          expect(idx.segments[0]).toMatchObject({ records: parsed.records.length, offHi: statSync(path).size });
          // The one built from memory equals the one built from the file.
          const again = join(dir, 'again.pcap');
          writeFileSync(again, readFileSync(path));
          execFileSync(qeIndex, ['--fields', FIELDS, '--block-size', '4096', again]);
          expect(readFileSync(indexPathFor(again)).equals(mine), `${f}: the writer's index differs from qe-index's`).toBe(true);
          // And it covers what tshark sees.
          const view = tsharkView(path);
          view.forEach((v, i) => {
            const off = parsed.records[i]!.offset;
            for (const k of v.all) {
              const postings = idx.segments[0]!.keys.get(k) ?? [];
              expect(postings.some((p) => Math.floor(p / 4096) === Math.floor(off / 4096) && p <= off), `${f} packet ${i + 1}: ${k}`).toBe(true);
            }
          });
          records += parsed.records.length;
          indexBytes += mine.length;
          pcapBytes += statSync(path).size;
        }
        expect(records).toBe(pkts.length);
        const stats = lastStats(msgs);
        // The open files' segments count too: more than the complete indexes alone.
        expect(stats.index_bytes).toBeGreaterThan(indexBytes);
        expect(stats.appended_bytes).toBe(pcapBytes + stats.index_bytes);
        expect(stats.written_bytes).toBe(pcapBytes);
      } finally {
        cleanup();
      }
    });

  it('without index fields writes no index and counts no index bytes', () => {
    const { dir, cleanup } = tempDir('index-writer');
    try {
      const input = join(dir, 'in.pcap');
      writeFileSync(input, buildPcap(indexTraffic(300, 3)));
      for (const extra of [[], ['--index-fields', '']]) {
        const store = join(dir, `store${extra.length}`);
        execFileSync('mkdir', [store]);
        const msgs = capture(['--read', input, '--iface', 'imp', '--dir', store, '--no-fsync', ...extra]);
        expect(readdirSync(store).filter((f) => f.includes('.qeidx'))).toEqual([]);
        expect(lastStats(msgs).index_bytes).toBe(0);
      }
    } finally {
      cleanup();
    }
  });

  it('refuses an unknown field or a bad block size', () => {
    for (const [args, msg] of [
      [['--index-fields', 'ip,vlans'], /unknown field 'vlans' \(known: mac, vlan, ip, port, proto, tunnel\)/],
      [['--index-block-size', '1000'], /--index-block-size 1000 is not a power of two from 4096 to 16777216/],
    ] as const) {
      let err = '';
      try {
        execFileSync(helperPath, ['--read', '/dev/null', '--iface', 'x', '--dir', '/tmp', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (e) {
        err = (e as { stderr: string }).stderr;
      }
      expect(err).toMatch(msg);
    }
  });

  it('the open file is findable through its .part index within a flush interval, and the closed file gets the complete one', async () => {
    const { dir, cleanup } = tempDir('index-writer');
    try {
      const pkts = indexTraffic(1200, 9);
      const whole = buildPcap(pkts);
      const recs = parsePcap(whole).records;
      const half = recs[599]!.offset + 16 + recs[599]!.caplen;
      const fifo = join(dir, 'in.fifo');
      execFileSync('mkfifo', [fifo]);
      const store = join(dir, 'store');
      execFileSync('mkdir', [store]);
      const child = spawn(helperPath, ['--read', fifo, '--iface', 'slow', '--dir', store, '--no-fsync', '--flush-ms', '100', '--index-fields', FIELDS], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines: string[] = [];
      createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
      const exited = new Promise((r) => child.once('exit', r));
      const fd = openSync(fifo, 'w');
      writeSync(fd, whole.subarray(0, half));
      const t0 = Date.now();
      let part: string | undefined;
      let seen = 0;
      while (Date.now() - t0 < 2000) {
        part = readdirSync(store).find((f) => f.endsWith('.pcap.part.qeidx'));
        if (part) {
          // Read while the helper appends: a segment caught half written is not there yet.
          try {
            const idx = decodeIndex(readFileSync(join(store, part)));
            seen = idx.segments.reduce((n, s) => n + s.records, 0);
            if (seen === 600) break;
          } catch (e) {
            if (!/torn segment/.test(String(e))) throw e;
          }
        }
        await sleep(20);
      }
      expect(seen, 'records covered by the open file\'s index within 2 s').toBe(600);
      const idx = decodeIndex(readFileSync(join(store, part!)));
      expect(idx.flags).toBe(0);
      // Segments follow one another over the file.
      for (let i = 1; i < idx.segments.length; i++) expect(idx.segments[i]!.offLo).toBe(idx.segments[i - 1]!.offHi);
      expect(idx.segments[0]!.offLo).toBe(24);
      expect(idx.segments.at(-1)!.offHi).toBe(half);
      writeSync(fd, whole.subarray(half));
      closeSync(fd);
      await exited;
      const files = readdirSync(store).sort();
      expect(files.length).toBe(2);
      expect(files[1]).toBe(`${files[0]}.qeidx`);
      const complete = decodeIndex(readFileSync(join(store, files[1]!)));
      expect(complete.flags).toBe(IDX_FLAG_COMPLETE);
      expect(complete.segments[0]!.records).toBe(pkts.length);
      // What the open file's segments said is what the complete index says, for the same records.
      for (const [k, postings] of idx.segments[0]!.keys) expect(complete.segments[0]!.keys.get(k)!.slice(0, postings.length)).toEqual(postings);
    } finally {
      cleanup();
    }
  });
});
