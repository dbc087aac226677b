// The flow builder (daemon/native/flow-build.c) through the real tools: qe-index --flows on files,
// qe-index --flows-stdout on a stream, and qe-capture --flows writing tables beside the files it
// writes. Every field of every record is held against a count made here from the same packets by an
// independent reference (test/lib/flow-check.ts); the open file's segments merge into the closed
// file's table.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHelperLine, type HelperMessage } from '../daemon/src/capture/protocol.js';
import { buildPcap, parsePcap } from '../daemon/src/pcap/format.js';
import { helperPath, root, sleep } from './lib/cli.js';
import { tempDir } from './lib/fixture.js';
import { FLOW, decodeFlowTable, mergeRecords, referenceFlows, type FlowRecord } from './lib/flow-check.js';
import { flowTraffic } from './lib/flow-traffic.js';

const qeIndex = join(root, 'build', 'native', 'qe-index');
const { dir: work, cleanup } = tempDir('flow-build');
afterAll(() => cleanup());

beforeAll(() => {
  execFileSync('make', ['-s', '-C', join(root, 'daemon', 'native')], { stdio: 'inherit' });
});

const pkts = flowTraffic(48, 3000, 7);
const pcap = buildPcap(pkts);
const recs = parsePcap(pcap).records;

function run(args: string[], input?: Buffer) {
  const r = spawnSync(qeIndex, args, { input, timeout: 60_000, maxBuffer: 256 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

function statusLines(out: Buffer): Array<Record<string, unknown>> {
  return out.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Records compared one by one, with the packet kinds of the flow in the message. */
function expectRecords(got: FlowRecord[], want: FlowRecord[], what: string): void {
  expect(got.length, `${what}: number of flows`).toBe(want.length);
  want.forEach((w, i) => expect(got[i], `${what}: flow ${i + 1} of ${want.length}`).toEqual(w));
}

describe('qe-index --flows', () => {
  it('counts every flow of a file as the reference does, every field of every record', () => {
    const path = join(work, 'all.pcap');
    writeFileSync(path, pcap);
    const r = run(['--fields', '', '--flows', path]);
    expect(r.status, r.stderr).toBe(0);
    const want = referenceFlows(recs);
    const lines = statusLines(r.stdout);
    expect(lines.find((l) => l.type === 'indexed')).toEqual({ type: 'indexed', path, records: recs.length, flows: want.length, flow_bytes: statSync(path + '.qeflow').size });
    // Flows only: no index was asked for.
    expect(existsSync(path + '.qeidx')).toBe(false);
    const t = decodeFlowTable(readFileSync(path + '.qeflow'));
    expect(t).toMatchObject({ version: FLOW.VERSION, flags: FLOW.FLAG_COMPLETE, linktype: 1, builder: 1, pcapFirstNs: recs[0]!.tsNs });
    expect(t.segments.length).toBe(1);
    expect(t.segments[0]).toMatchObject({ offLo: 24, offHi: pcap.length, packets: recs.length, firstNs: recs[0]!.tsNs, lastNs: recs.at(-1)!.tsNs });
    expectRecords(t.segments[0]!.records, want, 'qe-index');

    // The set covers what the rules are about (so the comparison above cannot pass on a thin set).
    const has = (p: (f: FlowRecord) => boolean) => want.filter(p).length;
    expect(has((f) => (f.flags & FLOW.RF_RTT) !== 0 && f.rttUs > 100)).toBeGreaterThan(20);
    expect(has((f) => f.rst > 0 && f.syn > 0 && f.synack === 0)).toBeGreaterThan(10);
    expect(has((f) => f.syn === 2 && f.synack === 1 && f.fin === 2)).toBeGreaterThan(5);
    expect(has((f) => (f.flags & FLOW.RF_FRAGMENTS) !== 0 && f.sport === 5353 && f.packets === 2)).toBeGreaterThan(10);
    expect(has((f) => (f.flags & FLOW.RF_FRAGMENTS) !== 0 && f.sport === 0 && f.dport === 0)).toBeGreaterThan(10);
    expect(has((f) => (f.flags & FLOW.RF_ICMP) !== 0 && f.packets === 1 && f.packetsRev === 1 && (f.sport === 8 || f.sport === 128))).toBeGreaterThan(10);
    expect(has((f) => (f.flags & FLOW.RF_ICMP) !== 0 && f.sport === 3 && f.dport === 3)).toBeGreaterThan(5);
    expect(has((f) => f.nvlan === 3 && f.vlan.join() === '5,6,7')).toBeGreaterThan(5);
    expect(has((f) => f.nvlan === 2 && f.ipVersion === 6)).toBeGreaterThan(3);
    expect(has((f) => f.ipVersion === 0 && f.sport === 0x0806)).toBeGreaterThan(3);
    expect(has((f) => f.ipVersion === 0 && f.sport === 0x88cc && f.nvlan === 1)).toBe(2);
    expect(has((f) => f.proto === 58 && f.sport === 139 && f.packets === 1 && f.packetsRev === 1)).toBe(16);
    expect(has((f) => f.proto === 58 && (f.sport === 146 || f.sport === 147) && f.packets === 1 && f.packetsRev === 0)).toBe(32);
    const odd = want.filter((f) => f.dport === 25 && f.sport >= 30000 && f.sport < 30100);
    expect(odd.length).toBe(8);
    for (const f of odd) expect(f).toMatchObject({ syn: 1, synack: 2, flags: FLOW.RF_RTT, packets: 2, packetsRev: 1 });
    // Both directions of a conversation are one record, oriented by its first packet.
    const web = want.find((f) => f.dport === 80 && f.syn === 1)!;
    expect(web).toMatchObject({ packets: 5, packetsRev: 3, synack: 1, fin: 2, tcpFlagsFwd: 0x1b, tcpFlagsRev: 0x1b });
  });

  it('builds the index and the flows in one pass, the index as without flows', () => {
    const a = join(work, 'both.pcap');
    const b = join(work, 'idx-only.pcap');
    writeFileSync(a, pcap);
    writeFileSync(b, pcap);
    const r = run(['--fields', 'ip,port,vlan', '--flows', a]);
    expect(r.status, r.stderr).toBe(0);
    expect(run(['--fields', 'ip,port,vlan', b]).status).toBe(0);
    expect(readFileSync(a + '.qeidx').equals(readFileSync(b + '.qeidx'))).toBe(true);
    expect(existsSync(b + '.qeflow')).toBe(false);
    const line = statusLines(r.stdout).find((l) => l.type === 'indexed')!;
    expect(Object.keys(line)).toEqual(['type', 'path', 'records', 'index', 'keys', 'index_bytes', 'flows', 'flow_bytes']);
    expect(readFileSync(a + '.qeflow').equals(readFileSync(join(work, 'all.pcap.qeflow')))).toBe(true);
  });

  it('counts a microsecond file of the other byte order the same', () => {
    const us = pkts.map((p) => ({ ...p, tsNs: (p.tsNs / 1000n) * 1000n }));
    const path = join(work, 'us.pcap');
    writeFileSync(path, byteSwap(buildPcap(us, { nanos: false })));
    expect(run(['--flows', path]).status).toBe(0);
    expectRecords(decodeFlowTable(readFileSync(path + '.qeflow')).segments[0]!.records, referenceFlows(parsePcap(buildPcap(us)).records), 'microsecond, swapped');
  });

  it('refuses what it cannot do, with the reason', () => {
    expect(run([]).stderr).toMatch(/--fields is required \(or --flows\)/);
    expect(run(['--fields', '', join(work, 'all.pcap')]).stderr).toMatch(/--fields is empty: there is nothing to index/);
    expect(run(['--flows', '--from-ns', '5', join(work, 'all.pcap')]).stderr).toMatch(/--from-ns and --to-ns go with --flows-stdout only/);
    expect(run(['--flows-stdout', join(work, 'all.pcap')]).stderr).toMatch(/takes no --fields, --flows or FILE/);
    const rev = run(['--flows-stdout', '--from-ns', '10', '--to-ns', '10'], Buffer.alloc(0));
    expect(rev.status).toBe(2);
    expect(rev.stderr).toMatch(/--from-ns 10 is not before --to-ns 10/);
  });
});

function byteSwap(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (const at of [0, 16, 20]) out.writeUInt32BE(b.readUInt32LE(at), at);
  out.writeUInt16BE(b.readUInt16LE(4), 4);
  out.writeUInt16BE(b.readUInt16LE(6), 6);
  for (let off = 24; off + 16 <= b.length; ) {
    const caplen = b.readUInt32LE(off + 8);
    for (let i = 0; i < 4; i++) out.writeUInt32BE(b.readUInt32LE(off + 4 * i), off + 4 * i);
    off += 16 + caplen;
  }
  return out;
}

describe('qe-index --flows-stdout', () => {
  it('turns a pcap stream into the complete table of the file', () => {
    const r = run(['--flows-stdout'], pcap);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.equals(readFileSync(join(work, 'all.pcap.qeflow')))).toBe(true);
  });

  it('counts only the packets with from <= time < to', () => {
    const from = recs[500]!.tsNs;
    const to = recs[2500]!.tsNs;
    expect(recs[499]!.tsNs).toBeLessThan(from);
    const r = run(['--flows-stdout', '--from-ns', String(from), '--to-ns', String(to)], pcap);
    expect(r.status, r.stderr).toBe(0);
    const t = decodeFlowTable(r.stdout);
    const inRange = recs.filter((x) => x.tsNs >= from && x.tsNs < to);
    expect(inRange.length).toBeGreaterThan(1500);
    // The table covers the stream; its packets are those of the range.
    expect(t.segments[0]).toMatchObject({ packets: inRange.length, offLo: 24, offHi: pcap.length, firstNs: inRange[0]!.tsNs, lastNs: inRange.at(-1)!.tsNs });
    expect(t.pcapFirstNs).toBe(inRange[0]!.tsNs);
    expectRecords(t.segments[0]!.records, referenceFlows(inRange), 'range');
    // An empty range is an empty table, not an error.
    const none = run(['--flows-stdout', '--from-ns', '1', '--to-ns', '2'], pcap);
    expect(none.status).toBe(0);
    expect(decodeFlowTable(none.stdout).segments).toEqual([{ offLo: 24, offHi: pcap.length, packets: 0, firstNs: 0n, lastNs: 0n, records: [] }]);
  });

  it('refuses a bad stream with its offset and what is wrong, and writes nothing', () => {
    const third = recs[3]!;
    const cases: Array<[string, Buffer, RegExp]> = [
      ['cut inside a record', pcap.subarray(0, third.offset + 20), new RegExp(`ends inside the record at byte ${third.offset} \\(4 of its ${third.caplen} bytes`)],
      ['cut inside a header', pcap.subarray(0, third.offset + 7), new RegExp(`ends inside a record header at byte ${third.offset} \\(7 of 16 bytes\\)`)],
      ['caplen over origlen', withField(pcap, third.offset + 12, third.caplen - 1), new RegExp(`record at byte ${third.offset} has a captured length greater than the original length`)],
      ['a bad fraction', withField(pcap, third.offset + 4, 1_000_000_000), new RegExp(`record at byte ${third.offset} has a nanosecond fraction of a second or more`)],
      ['huge caplen', withField(withField(pcap, third.offset + 8, 300_000), third.offset + 12, 300_000), new RegExp(`record at byte ${third.offset} has a captured length beyond the largest plausible record`)],
      ['not pcap', Buffer.from('hello, this is not a pcap stream at all'), /not a classic pcap stream \(no pcap magic number at byte 0\)/],
      ['empty', Buffer.alloc(0), /ends inside the 24-byte pcap header/],
    ];
    for (const [what, input, msg] of cases) {
      const r = run(['--flows-stdout'], input);
      expect(r.status, what).toBe(2);
      expect(r.stderr, what).toMatch(msg);
      expect(r.stdout.length, what).toBe(0);
    }
  });
});

function withField(b: Buffer, at: number, v: number): Buffer {
  const out = Buffer.from(b);
  out.writeUInt32LE(v, at);
  return out;
}

function capture(args: string[]): HelperMessage[] {
  const out = execFileSync(helperPath, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return out.trim().split('\n').map(parseHelperLine);
}

const lastStats = (msgs: HelperMessage[]) => msgs.filter((m) => m.type === 'stats').at(-1) as Extract<HelperMessage, { type: 'stats' }>;

describe('qe-capture --flows', () => {
  for (const nanos of [true, false])
    it(`an import (${nanos ? 'runs written as they are' : 'record by record'}) gets a flow table per file, as qe-index builds it`, () => {
      const { dir, cleanup: done } = tempDir('flow-writer');
      try {
        const input = join(dir, 'in.pcap');
        const mine = pkts.map((p) => ({ ...p, tsNs: (p.tsNs / 1000n) * 1000n }));
        writeFileSync(input, buildPcap(mine, { nanos }));
        const store = join(dir, 'store');
        execFileSync('mkdir', [store]);
        const msgs = capture(['--read', input, '--iface', 'imp', '--dir', store, '--no-fsync', '--file-size', '200000', '--flows', '--index-fields', 'ip,port']);
        expect(msgs.at(-1)).toMatchObject({ type: 'done', exit_code: 0 });
        const files = readdirSync(store).sort();
        const pcaps = files.filter((f) => f.endsWith('.pcap'));
        expect(pcaps.length).toBeGreaterThan(3);
        // A complete table and index per closed file; no .part table, no temporary file.
        expect(files).toEqual([...pcaps, ...pcaps.map((f) => f + '.qeflow'), ...pcaps.map((f) => f + '.qeidx')].sort());
        let flowBytes = 0;
        let indexBytes = 0;
        let pcapBytes = 0;
        let packets = 0;
        for (const f of pcaps) {
          const path = join(store, f);
          const table = readFileSync(path + '.qeflow');
          const again = join(dir, 'again.pcap');
          writeFileSync(again, readFileSync(path));
          expect(run(['--flows', again]).status).toBe(0);
          expect(readFileSync(again + '.qeflow').equals(table), `${f}: the writer's table differs from qe-index's`).toBe(true);
          const t = decodeFlowTable(table);
          expect(t.flags).toBe(FLOW.FLAG_COMPLETE);
          const fileRecs = parsePcap(readFileSync(path)).records;
          expectRecords(t.segments[0]!.records, referenceFlows(fileRecs), f);
          packets += fileRecs.length;
          flowBytes += table.length;
          indexBytes += statSync(path + '.qeidx').size;
          pcapBytes += statSync(path).size;
        }
        expect(packets).toBe(pkts.length);
        const stats = lastStats(msgs);
        // The open files' segments count too: more than the complete tables alone.
        expect(stats.flow_bytes).toBeGreaterThan(flowBytes);
        expect(stats.index_bytes).toBeGreaterThan(indexBytes);
        expect(stats.appended_bytes).toBe(pcapBytes + stats.index_bytes + stats.flow_bytes);
        expect(stats.written_bytes).toBe(pcapBytes);
      } finally {
        done();
      }
    });

  it('without --flows writes no flow table and counts no flow bytes', () => {
    const { dir, cleanup: done } = tempDir('flow-writer');
    try {
      const input = join(dir, 'in.pcap');
      writeFileSync(input, pcap);
      const store = join(dir, 'store');
      execFileSync('mkdir', [store]);
      const msgs = capture(['--read', input, '--iface', 'imp', '--dir', store, '--no-fsync']);
      expect(readdirSync(store).filter((f) => f.includes('.qeflow'))).toEqual([]);
      expect(lastStats(msgs).flow_bytes).toBe(0);
    } finally {
      done();
    }
  });

  it("the open file's table grows a segment per flush, and the closed file's table is their merge", async () => {
    const { dir, cleanup: done } = tempDir('flow-writer');
    try {
      const fifo = join(dir, 'in.fifo');
      execFileSync('mkfifo', [fifo]);
      const store = join(dir, 'store');
      execFileSync('mkdir', [store]);
      const child = spawn(helperPath, ['--read', fifo, '--iface', 'slow', '--dir', store, '--no-fsync', '--flush-ms', '100', '--flows'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines: string[] = [];
      createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
      const exited = new Promise((r) => child.once('exit', r));
      const fd = openSync(fifo, 'w');
      // Three pieces, each waited for: each is covered by the open file's table within 2 s.
      const cuts = [1000, 2200, recs.length].map((n) => (n === recs.length ? pcap.length : recs[n]!.offset));
      let from = 0;
      let part = '';
      for (const [i, cut] of cuts.entries()) {
        writeSync(fd, pcap.subarray(from, cut));
        from = cut;
        const want = i === cuts.length - 1 ? recs.length : [1000, 2200][i]!;
        const t0 = Date.now();
        let seen = 0;
        while (Date.now() - t0 < 2000) {
          part = readdirSync(store).find((f) => f.endsWith('.pcap.part.qeflow')) ?? '';
          if (part) {
            seen = decodeFlowTable(readFileSync(join(store, part)), { torn: true }).segments.reduce((n, s) => n + s.packets, 0);
            if (seen === want) break;
          }
          await sleep(20);
        }
        expect(seen, `packets covered by the open file's table within 2 s, piece ${i + 1}`).toBe(want);
      }
      const open = decodeFlowTable(readFileSync(join(store, part)));
      expect(open.flags).toBe(0);
      expect(open.segments.length).toBeGreaterThanOrEqual(3);
      expect(open.segments[0]!.offLo).toBe(24);
      for (let i = 1; i < open.segments.length; i++) expect(open.segments[i]!.offLo).toBe(open.segments[i - 1]!.offHi);
      expect(open.segments.at(-1)!.offHi).toBe(pcap.length);
      // A segment holds what its packets added: its records' packets are its packets.
      for (const s of open.segments) expect(s.records.reduce((n, r) => n + r.packets + r.packetsRev, 0)).toBe(s.packets);
      closeSync(fd);
      await exited;
      const files = readdirSync(store).sort();
      expect(files).toEqual([files[0], `${files[0]}.qeflow`]);
      const complete = decodeFlowTable(readFileSync(join(store, files[1]!)));
      expect(complete.flags).toBe(FLOW.FLAG_COMPLETE);
      const merged = mergeRecords(open.segments.flatMap((s) => s.records));
      expectRecords(complete.segments[0]!.records, merged, 'merge of the segments');
      expectRecords(complete.segments[0]!.records, referenceFlows(recs), 'reference');
      expect(lines.map((l) => parseHelperLine(l)).at(-1)).toMatchObject({ type: 'done', exit_code: 0 });
    } finally {
      done();
    }
  });
});

describe('the bound on flows', () => {
  /** `n` one-packet UDP flows, raw IPv4 (link type 101), written straight into a pcap buffer. */
  function manyFlows(n: number): Buffer {
    const rec = 16 + 28;
    const b = Buffer.alloc(24 + n * rec);
    b.writeUInt32LE(0xa1b23c4d, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt16LE(4, 6);
    b.writeUInt32LE(65535, 16);
    b.writeUInt32LE(101, 20);
    const t0 = 1_714_557_600;
    for (let i = 0; i < n; i++) {
      const at = 24 + i * rec;
      b.writeUInt32LE(t0 + Math.floor(i / 1_000_000), at);
      b.writeUInt32LE((i % 1_000_000) * 1000, at + 4);
      b.writeUInt32LE(28, at + 8);
      b.writeUInt32LE(28, at + 12);
      const ip = at + 16;
      b[ip] = 0x45;
      b.writeUInt16BE(28, ip + 2);
      b[ip + 8] = 64;
      b[ip + 9] = 17;
      b.writeUInt32BE(0x0a000000 + (i >>> 8), ip + 12);
      b.writeUInt32BE(0xc0a80001, ip + 16);
      b.writeUInt16BE(1024 + (i & 0xff), ip + 20);
      b.writeUInt16BE(53, ip + 22);
      b.writeUInt16BE(8, ip + 24);
    }
    return b;
  }

  it('a file with more flows than a table holds: the writer starts a new file at the bound, qe-index fails the file', () => {
    const max = 2 ** 20; // QE_FLOW_BUILD_MAX_FLOWS
    const { dir, cleanup: done } = tempDir('flow-bound');
    try {
      const input = join(dir, 'many.pcap');
      writeFileSync(input, manyFlows(max + 1000));
      const store = join(dir, 'store');
      execFileSync('mkdir', [store]);
      const msgs = capture(['--read', input, '--iface', 'many', '--dir', store, '--no-fsync', '--flows']);
      expect(msgs.filter((m) => m.type === 'error')).toEqual([]);
      expect(msgs.at(-1)).toMatchObject({ type: 'done', exit_code: 0 });
      const pcaps = readdirSync(store).filter((f) => f.endsWith('.pcap')).sort();
      expect(pcaps.length).toBe(2);
      const counts = pcaps.map((f) => decodeFlowTable(readFileSync(join(store, f + '.qeflow'))).segments[0]!.records.length);
      expect(counts).toEqual([max, 1000]);
      const r = run(['--flows', input]);
      expect(r.status).toBe(4);
      expect(statusLines(r.stdout).find((l) => l.type === 'error')?.message).toMatch(new RegExp(`this file reaches ${max} flows \\(at byte \\d+\\), all a flow table holds`));
      expect(existsSync(input + '.qeflow')).toBe(false);
    } finally {
      done();
    }
  }, 120_000);
});
