// Several writers on one store: an import reading a slow source (a FIFO) while a second import or
// a daemon starts on the same store. Start-up repair must leave a file another live writer holds
// alone, and a slow import's packets reach its file within the flush interval, as live capture's do.
import { mkdir, open, readFile, readdir, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildPcap, GLOBAL_HEADER_LEN, parsePcap, RECORD_HEADER_LEN } from '../daemon/src/pcap/format.js';
import { cli, readRecords, RunningCapture, sleep, storeFiles, tempDir, writeConfig } from './lib/cli.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink } from './lib/lab.js';

let dir: string;
let store: string;
let lab: Lab;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await tempDir();
  store = join(dir, 'store');
  await mkdir(store);
  lab = new Lab();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  await lab.cleanup();
});

const frames = testFrames({ count: 40, seed: 5 });
const t0 = BigInt(Date.now()) * 1_000_000n;
// Microsecond records go through the writer's buffer (a 0-byte .part until a flush); nanosecond
// ones are written as they come (a .part with records, which repair would have renamed).
const input = (nanos: boolean) => buildPcap(frames.map((data, i) => ({ tsNs: t0 + BigInt(i) * 1000n, data })), { nanos });
/** Bytes of the header and the first n records of the input. */
const prefix = (n: number) => GLOBAL_HEADER_LEN + frames.slice(0, n).reduce((s, f) => s + RECORD_HEADER_LEN + f.length, 0);

/** Import A: `capture --read` of a FIFO the test writes to; the FIFO stays open until `finish`. */
async function slowImport(config: string, nanos = false) {
  const whole = input(nanos);
  const fifo = join(dir, 'slow.fifo');
  await execa('mkfifo', [fifo]);
  const proc = cli(['capture', '--read', fifo, '--iface', 'slow', '--config', config, '--summary', join(dir, 'slow.json')], { timeout: 120_000 });
  const writer: FileHandle = await open(fifo, 'w');
  cleanups.push(async () => {
    await writer.close().catch(() => {});
    proc.kill('SIGKILL');
  });
  await writer.write(whole.subarray(0, prefix(3)));
  const part = await waitForPart('slow');
  return {
    part,
    proc,
    async finish() {
      await writer.write(whole.subarray(prefix(3)));
      await writer.close();
      return proc;
    },
  };
}

async function waitForPart(label: string, timeoutMs = 10_000): Promise<string> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(50)) {
    const part = (await readdir(store)).find((f) => f.endsWith(`_${label}.pcap.part`));
    if (part) return join(store, part);
  }
  throw new Error(`no ${label} .part file appeared in ${store}: ${(await readdir(store)).join(', ')}`);
}

async function expectSlowImportWhole(a: Awaited<ReturnType<typeof slowImport>>) {
  const done = await a.finish();
  expect(done.exitCode, done.all).toBe(0);
  expect(done.all).toMatch(/40 packets read, 0 filtered out, 40 written/);
  expect((await readdir(store)).filter((f) => f.endsWith('.part'))).toEqual([]);
  expect((await readRecords(await storeFiles([store], 'slow'))).map((r) => r.data)).toEqual(frames);
}

describe('writers sharing a store', () => {
  it.each([false, true])('a second import leaves a running import\'s open file alone, and says so; both imports are whole (nanosecond input: %s)', async (nanos) => {
    const config = await writeConfig(dir, { paths: [store], flush_interval: '200ms' });
    const a = await slowImport(config, nanos);
    const other = join(dir, 'other.pcap');
    const otherFrames = testFrames({ count: 25, seed: 6 });
    await writeFile(other, buildPcap(otherFrames.map((data, i) => ({ tsNs: t0 + BigInt(i), data })), { nanos: true }));

    const b = await cli(['capture', '--read', other, '--iface', 'other', '--config', config]);
    expect(b.exitCode, b.all).toBe(0);
    expect(b.all).toContain(`left ${a.part} alone: another process is writing it`);
    expect((await stat(a.part)).isFile()).toBe(true);
    expect((await readRecords(await storeFiles([store], 'other'))).map((r) => r.data)).toEqual(otherFrames);

    await expectSlowImportWhole(a);
  });

  it('a daemon starting on the store leaves a running import\'s open file alone', async () => {
    const link = await captureLink(lab, 'qew0');
    const config = await writeConfig(dir, { interfaces: [link.capDev], paths: [store], flush_interval: '200ms' });
    const a = await slowImport(config);
    const daemon = new RunningCapture(config);
    cleanups.push(() => daemon.stop('SIGKILL'));
    await daemon.waitFor(`${link.capDev}: capturing`);
    expect(daemon.output).toContain(`left ${a.part} alone: another process is writing it`);
    const stopped = await daemon.stop();
    expect(stopped.exitCode, stopped.all).toBe(0);
    expect((await stat(a.part)).isFile()).toBe(true);

    await expectSlowImportWhole(a);
  });

  it('an import from a slow source writes what it has within storage.flush_interval', async () => {
    const config = await writeConfig(dir, { paths: [store], flush_interval: '300ms' });
    const a = await slowImport(config);
    // The .part appeared with the first packet; one flush interval (and a margin) later the three
    // records sent so far are in it, although the 4 MiB buffer is far from full.
    await sleep(800);
    const { records } = parsePcap(await readFile(a.part));
    expect(records.map((r) => r.data)).toEqual(frames.slice(0, 3));
    await expectSlowImportWhole(a);
  });
});
