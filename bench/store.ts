// Store benchmark: catalog scan of a many-file store (cold: no cache; warm: cache present) and
// extraction of one flow over the whole store by qe-extract against `tcpdump -V` with the same
// filter over the same files. Writes bench/results/store-<ISO time>.json.
//
//   npx tsc -p tsconfig.json && make -C daemon/native && node build/bench/store.js [--files 40000]
//     [--packets 8] [--ifaces 4] [--dir DIR] [--keep]
//
// "Cold" means no catalog cache; the page cache is left alone (dropping it would slow everyone
// else on a shared machine), so cold numbers are CPU and syscall cost, not disk reads.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runExtractor } from '../daemon/src/extract/run-extractor.js';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { CACHE_FILE_NAME } from '../daemon/src/store/catalog-cache.js';
import { scanCatalog } from '../daemon/src/store/catalog.js';
import { formatFileName } from '../daemon/src/store/filename.js';
import { selectFiles } from '../daemon/src/store/select-files.js';

const S = 1_000_000_000n;
const BASE_NS = 1_714_557_600n * S;
const FLOW_FILTER = 'udp and host 10.9.9.9 and port 7777';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '40000' },
    packets: { type: 'string', default: '8' },
    ifaces: { type: 'string', default: '4' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const files = positive('--files', values.files!);
const perFile = positive('--packets', values.packets!);
const ifaceCount = positive('--ifaces', values.ifaces!);

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a whole number above 0, got "${v}"`);
  return n;
}

/** An Ethernet/IPv4/UDP frame; the flow's packets are the ones from 10.9.9.9:7777. */
function udpFrame(src: number, dst: number, sport: number, dport: number, payload: number): Buffer {
  const b = Buffer.alloc(14 + 20 + 8 + payload);
  b.fill(0x5a, 14 + 20 + 8);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b.writeUInt16BE(20 + 8 + payload, 16);
  b[22] = 64;
  b[23] = 17;
  b.writeUInt32BE(src, 26);
  b.writeUInt32BE(dst, 30);
  b.writeUInt16BE(sport, 34);
  b.writeUInt16BE(dport, 36);
  b.writeUInt16BE(8 + payload, 38);
  return b;
}

function generate(dir: string): { bytes: number; flowPackets: number } {
  mkdirSync(dir, { recursive: true });
  const perIface = Math.ceil(files / ifaceCount);
  let bytes = 0;
  let flowPackets = 0;
  let made = 0;
  for (let f = 0; f < perIface && made < files; f++) {
    for (let i = 0; i < ifaceCount && made < files; i++, made++) {
      // One file per interface per second, packets spread over it; every 10th file carries the flow.
      const start = BASE_NS + BigInt(f) * S + BigInt(i) * 1000n;
      const recs = [];
      for (let p = 0; p < perFile; p++) {
        const flow = f % 10 === 0 && p === 0;
        if (flow) flowPackets++;
        const data = flow
          ? udpFrame(0x0a090909, 0x0a000001, 7777, 7777, 100)
          : udpFrame(0x0a000000 + ((p * 7 + f) % 250) + 1, 0x0a000101, 1000 + p, 53, 60 + ((p * 37 + f) % 900));
        recs.push({ tsNs: start + (BigInt(p) * S) / BigInt(perFile), data });
      }
      const buf = buildPcap(recs);
      writeFileSync(join(dir, formatFileName(start, `eth${i}`)), buf);
      bytes += buf.length;
    }
  }
  return { bytes, flowPackets };
}

async function timed<T>(fn: () => Promise<T> | T): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, Math.round((performance.now() - t) * 10) / 10];
}

async function main(): Promise<void> {
  const root = values.dir ?? mkdtempSync(join(tmpdir(), 'qe-bench-store-'));
  const store = join(root, 'store');
  try {
    const [gen, genMs] = await timed(() => generate(store));
    console.error(`generated ${files} files (${(gen.bytes / 1e6).toFixed(1)} MB) in ${genMs} ms`);

    rmSync(join(store, CACHE_FILE_NAME), { force: true });
    const [cold, coldMs] = await timed(() => scanCatalog([store]));
    const [warm, warmMs] = await timed(() => scanCatalog([store]));
    console.error(`scan cold ${coldMs} ms, warm ${warmMs} ms (${warm.stats.cached} cached)`);

    const sel = selectFiles(warm.entries, { fromNs: 0n, toNs: BASE_NS * 2n });
    const out = join(root, 'qe.pcap');
    const [ex, exMs] = await timed(() =>
      runExtractor({ streams: sel.streams, fromNs: 0n, toNs: BASE_NS * 2n, filter: FLOW_FILTER, output: out, linktype: 1, snaplen: 262144 }),
    );
    console.error(`qe-extract ${exMs} ms: ${ex.counts?.packets} packets (exit ${ex.exitCode})`);

    // tcpdump -V reads a list of files one after another (no merge across interfaces), the
    // closest a stock tool comes to the same job. -Z root: run as root, tcpdump would otherwise
    // drop to its own user after the first file and be refused the rest.
    const list = join(root, 'tcpdump-files');
    writeFileSync(list, sel.streams.flatMap((s) => s.files.map((f) => f.path)).join('\n') + '\n');
    const tdOut = join(root, 'tcpdump.pcap');
    const [td, tdMs] = await timed(() =>
      spawnSync('tcpdump', ['-Z', 'root', '--time-stamp-precision', 'nano', '-V', list, '-w', tdOut, FLOW_FILTER], {
        encoding: 'utf8',
        maxBuffer: 1 << 28, // a "reading from file" line per file: megabytes for 40,000 files
      }),
    );
    if (td.error || td.status !== 0) throw new Error(`tcpdump failed: ${td.error?.message ?? td.stderr.slice(-2000)}`);
    const tdPackets = Number(execFileSync('capinfos', ['-T', '-r', '-c', tdOut], { encoding: 'utf8' }).trim().split('\t')[1]);
    console.error(`tcpdump -V ${tdMs} ms: ${tdPackets} packets`);

    // A narrow range (one minute): the catalog picks the few files that meet it, while a stock tool
    // without one must still read every file.
    const nFrom = BASE_NS + 1000n * S;
    const nTo = nFrom + 60n * S;
    const narrowSel = selectFiles(warm.entries, { fromNs: nFrom, toNs: nTo });
    const narrowOut = join(root, 'qe-narrow.pcap');
    const [nex, nexMs] = await timed(() =>
      runExtractor({ streams: narrowSel.streams, fromNs: nFrom, toNs: nTo, filter: FLOW_FILTER, output: narrowOut, linktype: 1, snaplen: 262144 }),
    );
    const narrowFiles = narrowSel.streams.reduce((n, st) => n + st.files.length, 0);
    console.error(`narrow range: qe-extract ${nexMs} ms over ${narrowFiles} files: ${nex.counts?.packets} packets; tcpdump must read all ${files} (${tdMs} ms above)`);

    const result = {
      benchmark: 'store',
      at: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      params: { files, packetsPerFile: perFile, ifaces: ifaceCount, storeBytes: gen.bytes, filter: FLOW_FILTER },
      catalog: {
        coldMs,
        warmMs,
        cold: { ...cold.stats, elapsedMs: undefined },
        warm: { ...warm.stats, elapsedMs: undefined },
        cacheBytes: statSync(join(store, CACHE_FILE_NAME)).size,
      },
      extract: {
        qeExtractMs: exMs,
        qeExtractPackets: ex.counts?.packets,
        qeExtractBytesRead: ex.counts?.bytes_read,
        tcpdumpMs: tdMs,
        tcpdumpPackets: tdPackets,
        expectedPackets: gen.flowPackets,
        outputsAgree: ex.counts?.packets === tdPackets && tdPackets === gen.flowPackets,
        speedup: Math.round((tdMs / exMs) * 100) / 100,
      },
      narrowRange: {
        seconds: 60,
        filesSelected: narrowFiles,
        qeExtractMs: nexMs,
        qeExtractPackets: nex.counts?.packets,
        // tcpdump has no time selection: the same job costs it the whole-store pass above.
        tcpdumpMs: tdMs,
        speedup: Math.round((tdMs / nexMs) * 100) / 100,
      },
    };
    const dir = new URL('./results/', import.meta.url.replace('/build/bench/', '/bench/'));
    mkdirSync(dir, { recursive: true });
    const file = new URL(`store-${result.at.replace(/[:.]/g, '-')}.json`, dir);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    console.error(`wrote ${file.pathname}`);
  } finally {
    if (!values.keep && !values.dir) rmSync(root, { recursive: true, force: true });
  }
}

await main();
