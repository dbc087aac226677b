// The helper protocol has one definition (daemon/src/capture/protocol.ts): the real qe-capture is
// held to its strict schemas (a field they do not know fails), takes every command its builders
// make, and docs/ARCHITECTURE.md names exactly the messages, fields and commands it defines.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { HELPER_COMMANDS, helperCommand, helperMessage, parseHelperLine, type HelperMessage } from '../daemon/src/capture/protocol.js';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { helperPath, root, sleep, tempDir } from './lib/cli.js';
import { testFrames } from './lib/frames.js';

/** What the docs say: each message type with its fields, and the command forms. */
export function documentedProtocol(md: string): { messages: Record<string, string[]>; commands: string[] } {
  const start = md.indexOf('## Helper protocol');
  const section = md.slice(start, md.indexOf('\n## ', start + 1));
  const messages: Record<string, string[]> = {};
  for (const m of section.matchAll(/^\| `(\w+)` \| (.*) \|$/gm)) {
    // "source (`live` or `file`), pid (...)": a field is the first word of each comma/semicolon part.
    const withoutNotes = m[2]!.replace(/\([^)]*\)/g, '');
    messages[m[1]!] = withoutNotes.split(/[,;]/).map((f) => f.trim()).filter(Boolean).sort();
  }
  const from = section.indexOf('Daemon → helper');
  const para = section.slice(from, section.indexOf('A line is at most', from));
  const commands = [...para.matchAll(/`((?:set |stop)[^`]*)`/g)].map((m) => m[1]!);
  return { messages, commands };
}

export function definedProtocol(): { messages: Record<string, string[]>; commands: string[] } {
  const messages: Record<string, string[]> = {};
  for (const o of helperMessage.options) {
    const { type, ...fields } = o.shape;
    messages[type.value] = Object.keys(fields).sort();
  }
  return { messages, commands: Object.values(HELPER_COMMANDS) };
}

describe('docs/ARCHITECTURE.md and protocol.ts', () => {
  it('name the same messages, fields and commands', async () => {
    const md = await readFile(join(root, 'docs/ARCHITECTURE.md'), 'utf8');
    expect(documentedProtocol(md)).toEqual(definedProtocol());
  });

  it('a drifted copy is caught: a table missing a field, or naming one the schema lacks', async () => {
    const md = await readFile(join(root, 'docs/ARCHITECTURE.md'), 'utf8');
    const missing = md.replace(', exit_code (offline', ' (offline');
    const extra = md.replace('| iface, code, message, fatal |', '| iface, code, message, fatal, errno |');
    const lostCommand = md.replace('`stop`.', 'and stop.');
    for (const drifted of [missing, extra, lostCommand]) {
      expect(drifted).not.toBe(md);
      expect(documentedProtocol(drifted)).not.toEqual(definedProtocol());
    }
  });
});

describe('the strict schemas', () => {
  it('refuse a field they do not know, naming it', () => {
    const line = JSON.stringify({ type: 'done', iface: 'x', exit_code: 0, elapsed_ms: 3 });
    expect(() => parseHelperLine(line)).toThrow(/elapsed_ms/);
  });

  it('read nanoseconds from their decimal strings as bigints', () => {
    const m = parseHelperLine('{"type":"file_opened","iface":"x","path":"/s/a.pcap.part","first_ns":"1764000000123456789"}');
    expect(m).toEqual({ type: 'file_opened', iface: 'x', path: '/s/a.pcap.part', first_ns: 1_764_000_000_123_456_789n });
  });
});

/** Every line the helper wrote, each parsed strictly (a parse failure names the line). */
function parseAll(stdout: string): HelperMessage[] {
  return stdout
    .trim()
    .split('\n')
    .map((l) => {
      try {
        return parseHelperLine(l);
      } catch (e) {
        throw new Error(`qe-capture wrote a line protocol.ts does not define: ${l}\n${(e as Error).message}`);
      }
    });
}

describe('the real qe-capture speaks exactly the protocol', () => {
  it('capture --read of a small pcap: every line fits the strict schemas, every message type of a read appears', async () => {
    const dir = await tempDir();
    const store = join(dir, 'store');
    await mkdir(store);
    const file = join(dir, 'in.pcap');
    const frames = testFrames({ count: 300, seed: 5 });
    await writeFile(file, buildPcap(frames.map((data, i) => ({ tsNs: 1_764_000_000_000_000_000n + BigInt(i) * 1_000_000n, data })), { nanos: true }));
    const r = await execa(helperPath, ['--read', file, '--iface', 'x', '--dir', store, '--file-size', '20000']);
    const msgs = parseAll(r.stdout);
    expect(new Set(msgs.map((m) => m.type))).toEqual(new Set(['started', 'file_opened', 'file_closed', 'stats', 'done']));
    expect(msgs.at(-1)).toEqual({ type: 'done', iface: 'x', exit_code: 0 });
  });

  it('a short live capture on lo takes every command helperCommand builds, then stops on its `stop`', async () => {
    const dir = await tempDir();
    const store = join(dir, 'store');
    await mkdir(store);
    const child = spawn(helperPath, ['--iface', 'lo', '--dir', store, '--no-fsync', '--flush-ms', '100', '--file-size', '4096', '--filter', 'udp port 39111'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const stdoutClosed = new Promise((r) => child.stdout.once('close', r));
    try {
      for (let i = 0; i < 500 && !lines.some((l) => l.includes('"started"')); i++) await sleep(10);
      const send = (line: string) => child.stdin.write(`${line}\n`);
      const elements = join(dir, 'elements');
      await writeFile(elements, 'qe-elements 1\nelement 0 udp port 39111\n');
      for (const c of [
        helperCommand.fileSize(8192),
        helperCommand.fileDurationMs(60_000),
        helperCommand.flushMs(50),
        helperCommand.filter('udp port\n39111'),
        helperCommand.quota(1 << 20),
        helperCommand.quota('none'),
        helperCommand.elements(elements),
      ])
        send(c);
      await sleep(200);
      const sock = createSocket('udp4');
      for (let i = 0; i < 60; i++) {
        sock.send(Buffer.alloc(400, i), 39111, '127.0.0.1');
        await sleep(5);
      }
      sock.close();
      await sleep(400);
      send(helperCommand.stop());
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    await stdoutClosed;
    const msgs = parseAll(lines.join('\n'));
    // No command was refused or misread.
    expect(msgs.filter((m) => m.type === 'error')).toEqual([]);
    expect(new Set(msgs.map((m) => m.type))).toEqual(new Set(['started', 'file_opened', 'file_closed', 'stats', 'elements', 'done']));
    const last = msgs.filter((m) => m.type === 'stats').at(-1);
    expect(last).toMatchObject({ received: 60, written: 60 });
    expect(msgs.filter((m) => m.type === 'elements').at(-1)).toMatchObject({ generation: 1, elements: [{ packets: 60, bytes: 60 * 442 }] });
  });
});
