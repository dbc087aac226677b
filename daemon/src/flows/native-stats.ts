// The statistics of a query, merged and counted by qe-flowstat (daemon/native/qe-flowstat.c):
// a store's range has millions of flow records, which JavaScript merged at about 2 us each. This
// module is the daemon's side of its stdin protocol: it hands over the files whose tables answer
// (the tool reads them itself and says what must still be read as packets), then the records made
// from packets, then reads the totals and the top rows, whose keys it makes text here.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import type { Range } from '../extract/read-plan.js';
import type { CatalogEntry } from '../store/catalog.js';
import { nativeTool } from '../util/native.js';
import { addressText } from './address.js';
import type { FilePlan, FlowSink } from './collect.js';
import { protoLabel } from './render.js';
import type { StatsBy, StatsRow, StatsTotal } from './stats.js';

/** qe-flowstat's commands (daemon/native/flow-stats-protocol.h is the other copy). */
export const FLOWSTAT_COMMANDS = { table: 'table', plan: 'plan', body: 'body', end: 'end' } as const;

/** What qe-flowstat says of a file (collect.ts FilePlan without the file). */
interface PlanLine {
  fromTable: number;
  why?: FilePlan['why'];
  note?: string;
  read?: 'all' | [number, number][];
  bytes: number;
}

/** Ties in the order people read them (10.0.0.9 before 10.0.0.10): one collator, made when a tie
 * first needs it (making one loads ICU's data: about 10 ms of a query that takes a few hundred). */
let keyOrder: Intl.Collator | undefined;
const compareKeys = (a: string | number, b: string | number) => (keyOrder ??= new Intl.Collator('en', { numeric: true })).compare(String(a), String(b));

export class NativeStats implements FlowSink {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly queue: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;
  private stderr = '';
  private readonly exited: Promise<number | null>;
  private readonly ifaceIds = new Map<string, number>();
  private readonly ifaces: string[] = [];

  constructor(fromNs: bigint, toNs: bigint, private readonly by: StatsBy, private readonly top?: number) {
    this.child = spawn(nativeTool('qe-flowstat'), ['--from-ns', fromNs.toString(), '--to-ns', toNs.toString(), '--by', by, ...(top !== undefined ? ['--top', String(top)] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin.on('error', () => {}); // a tool that died early closes its stdin: said by its exit
    this.child.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d.toString();
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', (code) => resolve(code));
    });
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(l);
      } else this.queue.push(l);
    });
    this.lines.on('close', () => {
      this.ended = true;
      this.waiting?.(undefined);
    });
  }

  private async line(): Promise<string> {
    const l = this.queue.shift() ?? (this.ended ? undefined : await new Promise<string | undefined>((resolve) => (this.waiting = resolve)));
    if (l === undefined) {
      const code = await this.exited.catch((e: Error) => e.message);
      throw new Error(`qe-flowstat ended (${typeof code === 'number' ? `exit ${code}` : code}) without an answer: ${this.stderr.trim() || 'no message'}`);
    }
    return l;
  }

  private ifaceId(iface: string): number {
    let id = this.ifaceIds.get(iface);
    if (id === undefined) {
      id = this.ifaces.push(iface) - 1;
      this.ifaceIds.set(iface, id);
    }
    return id;
  }

  private send(text: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.stdin.write(text)) resolve();
      else {
        // A tool that died never drains: its exit is what the next answer reports.
        const done = () => {
          this.child.stdin.off('drain', done);
          this.child.stdin.off('close', done);
          resolve();
        };
        this.child.stdin.once('drain', done);
        this.child.stdin.once('close', done);
      }
    });
  }

  async planTables(files: readonly CatalogEntry[]): Promise<FilePlan[]> {
    if (files.some((f) => f.path.includes('\n'))) throw new Error('a capture file name holds a line break');
    const C = FLOWSTAT_COMMANDS;
    await this.send(files.map((f) => `${C.table} ${this.ifaceId(f.iface)} ${f.partial ? 1 : 0} ${f.size} ${f.path}\n`).join('') + `${C.plan}\n`);
    const plans: FilePlan[] = [];
    for (const file of files) {
      const p = JSON.parse(await this.line()) as PlanLine;
      const read: FilePlan['read'] = p.read === undefined || p.read === 'all' ? p.read : p.read.map(([a, b]): Range => [a, b < 0 ? 'end' : b]);
      plans.push({ file, fromTable: p.fromTable, ...(read !== undefined ? { read } : {}), ...(p.why ? { why: p.why } : {}), ...(p.note ? { note: p.note } : {}), bytes: p.bytes });
    }
    const done = JSON.parse(await this.line()) as { planned: number };
    if (done.planned !== files.length) throw new Error(`qe-flowstat planned ${done.planned} files of ${files.length}`);
    return plans;
  }

  addBody(iface: string, body: Buffer): Promise<void> {
    return this.send(Buffer.concat([Buffer.from(`${FLOWSTAT_COMMANDS.body} ${this.ifaceId(iface)} ${body.length}\n`), body]));
  }

  /** The totals and rows, largest first (bytes, then packets, then key); `top` keeps the first N. */
  async finish(): Promise<{ total: StatsTotal; rows: StatsRow[] }> {
    await this.send(`${FLOWSTAT_COMMANDS.end}\n`);
    this.child.stdin.end();
    const head = JSON.parse(await this.line()) as StatsTotal & { rows: number };
    const rows: StatsRow[] = [];
    for (let i = 0; i < head.rows; i++) {
      const [key, packets, bytes, flows] = JSON.parse(await this.line()) as [string | number, number, number, number];
      rows.push({ key: this.keyText(key), packets, bytes, flows });
    }
    const code = await this.exited;
    if (code !== 0) throw new Error(`qe-flowstat failed (exit ${code}): ${this.stderr.trim() || 'no message'}`);
    // The tool ordered by bytes and packets and kept every row tied with the last: ties by key here.
    rows.sort((a, b) => b.bytes - a.bytes || b.packets - a.packets || compareKeys(a.key, b.key));
    return { total: { packets: head.packets, bytes: head.bytes, flows: head.flows }, rows: this.top === undefined ? rows : rows.slice(0, this.top) };
  }

  /** Ends the tool (a query that failed before its answer). */
  abort(): void {
    this.child.kill();
  }

  /** A key as qe-flowstat prints it, made the text stats.ts documents. */
  private keyText(k: string | number): string | number {
    switch (this.by) {
      case 'host':
      case 'src':
      case 'dst':
        return addressText(Buffer.from(k as string, 'hex'));
      case 'conversation': {
        const [lo, hi] = (k as string).split('-');
        return `${addressText(Buffer.from(lo!, 'hex'))} <-> ${addressText(Buffer.from(hi!, 'hex'))}`;
      }
      case 'port':
        return k as number;
      case 'proto':
        return (k as number) >= 65536 ? protoLabel({ ipVersion: 0, proto: 0, sport: (k as number) - 65536 }) : protoLabel({ ipVersion: 4, proto: k as number, sport: 0 });
      case 'vlan':
        return (k as string) === '' ? 'untagged' : (k as string);
      case 'iface':
        return this.ifaces[k as number] ?? String(k);
    }
  }
}
