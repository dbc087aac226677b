// Flow tables in the store's life cycle, with the real qe-index: counted with their pcap file,
// deleted with it, removed when orphaned, dropped with a repaired `.part` (and built again by
// `qe-packets index`), and built alone when the index is off.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { FLOW_H, FLOW_VERSION, flowPathFor } from '../daemon/src/flows/format.js';
import { checkFlowTable } from '../daemon/src/store/flow-check.js';
import { removeCaptureFile } from '../daemon/src/store/index-files.js';
import { removeOrphanIndexes, repairStore } from '../daemon/src/store/repair.js';
import { measureStore } from '../daemon/src/store/usage.js';
import { cli } from './lib/cli.js';
import { BASE_NS, MS, tempDir, traffic, writeCaptureFile } from './lib/fixture.js';
import { closedFiles, qeIndexPath } from './lib/index-fixture.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));
function dir(): string {
  const t = tempDir('flows');
  cleanups.push(t.cleanup);
  return t.dir;
}
const size = (p: string) => statSync(p).size;
const tables = (files: string[]) => execFileSync(qeIndexPath, ['--fields', '', '--flows', ...files], { stdio: 'ignore' });

function config(d: string, store: string, fields = '[]'): string {
  const path = join(d, 'config.yaml');
  writeFileSync(path, `storage:\n  paths: [${store}]\n  capacity: 1GiB\n  file_size: 64MiB\nindex:\n  fields: ${fields}\nmetrics: {listen: false}\n`);
  return path;
}

describe('flow tables in the store', () => {
  it('are counted with their pcap file, deleted with it, and removed when orphaned', async () => {
    const d = dir();
    const [a, b, c] = closedFiles(d, 3);
    tables([a!.path, b!.path, c!.path]);
    for (const f of [a!, b!, c!]) expect(existsSync(flowPathFor(f.path))).toBe(true);
    expect(existsSync(a!.path + '.qeidx')).toBe(false); // --fields '': the table only
    writeFileSync(flowPathFor(c!.path) + '.tmp', Buffer.alloc(200)); // a crash mid-write
    const orphan = join(d, '20240501T090000.000000000Z_eth9.pcap.qeflow');
    writeFileSync(orphan, Buffer.alloc(300));
    const u = await measureStore([d]);
    expect(u.closed.map((f) => f.size)).toEqual([a!, b!, c!].map((f) => size(f.path) + size(flowPathFor(f.path)) + (f === c ? 200 : 0)));
    expect(u.orphanIndexBytes).toBe(300);
    expect(u.totalBytes).toBe(readdirSync(d).reduce((n, f) => n + size(join(d, f)), 0));
    await removeCaptureFile(a!.path);
    expect(existsSync(flowPathFor(a!.path))).toBe(false);
    expect(removeOrphanIndexes([d])).toEqual([orphan]);
    expect(readdirSync(d).filter((n) => n.includes('eth9'))).toEqual([]);
  });

  it('a repaired .part loses its table of flushes; `qe-packets index` builds the closed file a complete one', async () => {
    const d = dir();
    const store = join(d, 'store');
    const part = writeCaptureFile(store, 'eth1', traffic(BASE_NS + 3_600_000n * MS, 30, 7), { partial: true, partialTail: 9 });
    writeFileSync(flowPathFor(part.path), Buffer.alloc(150)); // its writer's segments, torn by the crash
    const [r] = repairStore([store]);
    expect(r!.outcome).toBe('repaired');
    expect(existsSync(flowPathFor(part.path))).toBe(false);
    expect(checkFlowTable(r!.finalPath!)).toEqual({ state: 'missing' });
    const out = await cli(['index', '--config', config(d, store), '--json']);
    expect(out.exitCode, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ considered: 1, indexed: 1 });
    expect(checkFlowTable(r!.finalPath!)).toMatchObject({ state: 'current' });
    expect(checkFlowTable(r!.finalPath!, 'headers')).toMatchObject({ state: 'current' });
    expect(existsSync(r!.finalPath! + '.qeidx')).toBe(false);
  });

  it('a flow table of a newer format version is left alone and said so; --rebuild replaces it', async () => {
    const d = dir();
    const store = join(d, 'store');
    const [f] = closedFiles(store, 1);
    tables([f!.path]);
    const t = readFileSync(flowPathFor(f!.path));
    t.writeUInt16LE(FLOW_VERSION + 1, FLOW_H.version);
    t.writeUInt32LE(crc32(t.subarray(0, FLOW_H.crc)), FLOW_H.crc);
    writeFileSync(flowPathFor(f!.path), t);
    expect(checkFlowTable(f!.path)).toEqual({ state: 'version', found: 3, expected: 2 });
    expect(checkFlowTable(f!.path, 'headers')).toEqual({ state: 'version', found: 3, expected: 2 });
    const cfg = config(d, store);
    const r = await cli(['index', '--config', cfg, '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ indexed: 0, refused: 1, refused_files: [{ path: f!.path, reason: 'flow table format version 3, this qe-packets reads version 2' }] });
    expect(readFileSync(flowPathFor(f!.path))).toEqual(t);
    const again = await cli(['index', '--config', cfg, '--json', '--rebuild']);
    expect(JSON.parse(again.stdout)).toMatchObject({ indexed: 1, refused: 0 });
    expect(checkFlowTable(f!.path)).toMatchObject({ state: 'current' });
  });

  it('a flow table of an older format version (112-byte records) is rebuilt by `qe-packets index` without --rebuild', async () => {
    const d = dir();
    const store = join(d, 'store');
    const [f] = closedFiles(store, 1);
    tables([f!.path]);
    const current = readFileSync(flowPathFor(f!.path));
    const t = Buffer.from(current);
    t.writeUInt16LE(FLOW_VERSION - 1, FLOW_H.version);
    t.writeUInt32LE(crc32(t.subarray(0, FLOW_H.crc)), FLOW_H.crc);
    writeFileSync(flowPathFor(f!.path), t);
    expect(checkFlowTable(f!.path, 'headers')).toEqual({ state: 'version', found: 1, expected: 2 });
    const r = await cli(['index', '--config', config(d, store), '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ indexed: 1, refused: 0 });
    expect(checkFlowTable(f!.path)).toMatchObject({ state: 'current' });
    expect(readFileSync(flowPathFor(f!.path))).toEqual(current);
  });

  it('the header check catches a table cut short, of another file, or not complete', () => {
    const d = dir();
    const [f, g] = closedFiles(d, 2);
    tables([f!.path, g!.path]);
    const t = readFileSync(flowPathFor(f!.path));
    writeFileSync(flowPathFor(f!.path), t.subarray(0, t.length - 5));
    expect(checkFlowTable(f!.path, 'headers')).toMatchObject({ state: 'damaged', reason: expect.stringMatching(/bytes, its headers say/) });
    expect(checkFlowTable(f!.path, 'full')).toMatchObject({ state: 'damaged' });
    writeFileSync(flowPathFor(f!.path), readFileSync(flowPathFor(g!.path)));
    expect(checkFlowTable(f!.path, 'headers')).toMatchObject({ state: 'stale' });
    expect(checkFlowTable(f!.path, 'full')).toMatchObject({ state: 'stale' });
  });
});
