// The control channel between the daemon and qe-capture, fed what a hostile or careless config can
// put in it: command lines longer than the helper takes, and messages longer than its line buffer.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseHelperLine, type HelperMessage } from '../daemon/src/capture/protocol.js';
import { cli, helperPath, RunningCapture, sleep, tempDir, writeConfig } from './lib/cli.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';

// qe-capture's QE_COMMAND_LINE_MAX (daemon/native/proto.h): what the messages must name.
const LINE_MAX = 16384;
const FILTER_MAX = LINE_MAX - 'set filter \n'.length;

let dir: string;
let store: string;
let lab: Lab;
const cleanups: (() => unknown)[] = [];

beforeEach(async () => {
  dir = await tempDir();
  store = join(dir, 'store');
  await mkdir(store);
  lab = new Lab();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await lab.cleanup();
});

/** qe-capture run directly, as the daemon runs it: commands on stdin, every stdout line kept. */
class HelperRun {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  constructor(args: string[]) {
    this.child = spawn(helperPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    cleanups.push(() => this.child.kill('SIGKILL'));
    createInterface({ input: this.child.stdout }).on('line', (l) => this.lines.push(l));
    const closed = new Promise((r) => this.child.stdout.once('close', r));
    this.exited = new Promise((r) => this.child.once('exit', (code) => void closed.then(() => r(code))));
  }
  messages(): HelperMessage[] {
    return this.lines.map(parseHelperLine);
  }
  async waitFor(pred: (m: HelperMessage) => boolean, timeoutMs = 10_000): Promise<HelperMessage> {
    for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(20)) {
      const m = this.messages().find(pred);
      if (m) return m;
    }
    throw new Error(`no such message from qe-capture; got:\n${this.lines.join('\n')}`);
  }
}

describe('command lines to qe-capture', () => {
  it('refuses a line longer than it takes whole, up to its newline: no piece of it runs (a linear store keeps its quota)', async () => {
    const link = await captureLink(lab, 'qec0');
    const frames = testFrames({ count: 12, seed: 3 });
    const quota = 24 + 16 + frames[0]!.length + 16 + frames[1]!.length; // room for the first two
    const h = new HelperRun(['--iface', link.capDev, '--dir', store, '--quota', String(quota), '--flush-ms', '100', '--no-fsync']);
    await h.waitFor((m) => m.type === 'started');
    // A line of exactly the limit is taken (this filter keeps every packet).
    h.child.stdin.write(`set filter ${'len >= 0'.padEnd(FILTER_MAX)}\n`);
    // A filter whose tail is a command: cut into pieces of the old 4 KiB buffer, the tail ran.
    const filler = 'x'.repeat(4095 * 5 - 'set filter '.length);
    h.child.stdin.write(`set filter ${filler}set quota none\nbogus\n`);
    await h.waitFor((m) => m.type === 'error' && m.message.includes("unknown command 'bogus'"));
    await sendFrames(link.ns, link.genDev, frames, dir);
    await sleep(400);
    h.child.stdin.write('stop\n');
    expect(await h.exited).toBe(0);
    const errors = h.messages().filter((m) => m.type === 'error');
    expect(errors.map((m) => m.type === 'error' && m.message)).toEqual([
      `a command line longer than ${LINE_MAX} bytes (newline included) was refused whole: set filter xxxxxxxxxxxxxxxxxxxxxxxxxxxxx…`,
      'unknown command \'bogus\'',
      'the store is full (linear mode): packets are counted, not written',
    ]);
    const stats = h.messages().filter((m) => m.type === 'stats').pop();
    expect(stats).toMatchObject({ received: 12, written: 2, store_full_drops: 10 });
  });
});

describe('messages from qe-capture', () => {
  it('are each one valid JSON line whatever their strings hold: a fatal error about a path of 1,500 control characters keeps its code and its reason', async () => {
    // Escaped, each \x01 takes six bytes: 11 KB, past the helper's 8 KiB line.
    const path = `/nonexistent/${'\x01\x01\x01"\\'.repeat(500)}`;
    const h = new HelperRun(['--read', path, '--iface', 'x', '--dir', store]);
    expect(await h.exited).toBe(5);
    for (const line of h.lines) expect(() => parseHelperLine(line), line.slice(0, 200)).not.toThrow();
    const err = h.messages().find((m) => m.type === 'error');
    expect(err).toMatchObject({ type: 'error', code: 'bad_input', fatal: true });
    const message = err!.type === 'error' ? err!.message : '';
    // The start (what) and the end (why) are kept; the middle makes way, and says how much.
    expect(message.startsWith(`/nonexistent/${'\x01\x01\x01"\\'.repeat(60)}`)).toBe(true);
    expect(message).toMatch(/^[^…]+…\(\d+ bytes left out\)…[^…]+$/);
    expect(message.endsWith('\x01\x01\x01"\\: No such file or directory')).toBe(true);
    expect(h.lines.every((l) => Buffer.byteLength(l) < 8192)).toBe(true);
  });

  it('cut a long string only between whole UTF-8 characters', async () => {
    const path = `/nonexistent/${'é€😀\x02'.repeat(800)}`;
    const h = new HelperRun(['--read', path, '--iface', 'x', '--dir', store]);
    expect(await h.exited).toBe(5);
    const err = h.messages().find((m) => m.type === 'error');
    const message = err!.type === 'error' ? err!.message : '';
    expect(message).not.toContain('\ufffd');
    expect(message).toMatch(/^\/nonexistent\/(é€😀\x02)+(é|é€|é€😀)?…\(\d+ bytes left out\)…(€😀\x02|😀\x02|\x02)?(é€😀\x02)+: File name too long$/u);
  });
});

describe('the daemon and the filter length the helper takes', () => {
  // A valid filter padded with spaces: refused for its length alone.
  const longFilter = `tcp${' '.repeat(FILTER_MAX - 3 + 1)}`;
  const fitting = `tcp${' '.repeat(FILTER_MAX - 3)}`;

  it('check-config refuses a filter longer than the helper takes, naming the limit; one that just fits passes', async () => {
    const bad = await cli(['check-config', '--config', await writeConfig(dir, { interfaces: ['lo'], paths: [store], filter: longFilter })]);
    expect(bad.exitCode, bad.all).toBe(2);
    expect(bad.all).toContain(`capture.filter = "tcp     `);
    expect(bad.all).toContain(`is ${FILTER_MAX + 1} bytes; the capture helper takes a filter of at most ${FILTER_MAX} bytes (its control line, \`set filter EXPR\`, is at most ${LINE_MAX} bytes)`);
    const good = await cli(['check-config', '--config', await writeConfig(dir, { interfaces: ['lo'], paths: [store], filter: fitting })]);
    expect(good.exitCode, good.all).toBe(0);
  });

  it('a reload (SIGHUP) with a filter longer than the helper takes is refused, naming the limit, and capture goes on', async () => {
    const link = await captureLink(lab, 'qec1');
    const config = await writeConfig(dir, { interfaces: [link.capDev], paths: [store], filter: 'tcp' });
    const cap = new RunningCapture(config);
    cleanups.push(() => cap.stop('SIGKILL'));
    await cap.waitFor(`${link.capDev}: capturing`);
    await writeConfig(dir, { interfaces: [link.capDev], paths: [store], filter: longFilter });
    cap.proc.kill('SIGHUP');
    await cap.waitFor('reload refused');
    expect(cap.output).toContain(`the capture helper takes a filter of at most ${FILTER_MAX} bytes`);
    expect(cap.output).not.toMatch(/bad_command|refused whole/);
    const done = await cap.stop();
    expect(done.exitCode, done.all).toBe(0);
  });
});
