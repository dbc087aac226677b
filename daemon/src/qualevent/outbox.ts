// Events on disk before they leave: the queue the sender reads, kept in a journal (journal.ts) that
// survives restarts and kill -9. Events leave it when delivered, parked or dropped; when it is full
// the oldest snapshots go first and changes last, every drop counted.
import { mkdirSync } from 'node:fs';
import { appendFile, open, readFile, rename, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventKind, StateEvent } from './events.js';
import { JOURNAL_FILE, JOURNAL_VERSION, eventFrame, frame, readJournal, type JournalRecord } from './journal.js';

export const PARKED_FILE = 'parked.jsonl';
/** Below this the journal is never compacted: rewriting it would cost more than the dead records. */
const COMPACT_MIN_BYTES = 1024 * 1024;

export interface OutboxEntry {
  id: string;
  kind: EventKind;
  element: string;
  /** data.sequence of the event. */
  sequence: number;
  /** The event as sent: kept as JSON text, not as an object, so a full outbox of 100MiB costs about
   *  that much memory rather than several times it. */
  json: string;
  /** Its record's size in the journal: what counts against outbox_size. */
  bytes: number;
}

type Log = (level: 'info' | 'warn' | 'error', text: string) => void;

export class Outbox {
  private readonly entries = new Map<string, OutboxEntry>();
  private readonly seq = new Map<string, number>();
  private liveBytes = 0;
  private fileBytes = 0;
  private fh?: FileHandle;
  private chain: Promise<unknown> = Promise.resolve();
  /** Ids being sent: not dropped under them (a drop counted while the server takes it would lie). */
  readonly busy = new Set<string>();
  dropped = 0;

  private constructor(
    readonly dir: string,
    private readonly limitBytes: number,
    private readonly log: Log,
  ) {}

  /** Reads the journal back (cutting a torn tail), then rewrites it with the live events only. */
  static async open(dir: string, limitBytes: number, log: Log): Promise<Outbox> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const o = new Outbox(dir, limitBytes, log);
    const path = join(dir, JOURNAL_FILE);
    const buf = await readFile(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return Buffer.alloc(0);
      throw new Error(`qualevent outbox ${path}: cannot be read (${e.code ?? e.message}); events cannot be kept until it can`);
    });
    const j = readJournal(buf);
    const head = j.records[0]?.record;
    // A newer format is not guessed at: its events stay on disk for the version that wrote them.
    if (head?.t === 'H' && head.v > JOURNAL_VERSION)
      throw new Error(`qualevent outbox ${path}: written by a newer Qe-Packets (format ${head.v}, this one reads ${JOURNAL_VERSION}); update, or move the directory away to start an empty outbox`);
    if (j.torn) log('warn', `qualevent outbox ${path}: cut ${buf.length - j.goodBytes} bytes at offset ${j.goodBytes} (${j.torn}); kept ${j.records.length} records before it`);
    for (const { record, bytes } of j.records) o.replay(record, bytes);
    await o.compact();
    if (o.entries.size) log('info', `qualevent outbox: ${o.entries.size} events from before the restart wait for delivery`);
    return o;
  }

  private replay(r: JournalRecord, bytes: number): void {
    if (r.t === 'H') for (const [k, v] of Object.entries(r.seq)) this.seq.set(k, Math.max(v, this.seq.get(k) ?? 0));
    else if (r.t === 'E') {
      const element = r.event.subject;
      this.entries.set(r.event.id, { id: r.event.id, kind: r.kind, element, sequence: r.event.data.sequence, json: JSON.stringify(r.event), bytes });
      this.liveBytes += bytes;
      if (r.kind === 'change') this.seq.set(element, Math.max(r.event.data.sequence, this.seq.get(element) ?? 0));
    } else for (const id of r.ids) this.forget(id);
  }

  private forget(id: string): OutboxEntry | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    this.liveBytes -= e.bytes;
    return e;
  }

  /** The number the element's next change takes; the journal keeps it across restarts. */
  nextSequence(element: string): number {
    const n = (this.seq.get(element) ?? 0) + 1;
    this.seq.set(element, n);
    return n;
  }

  /** The number of the element's last change (0: none yet), which a snapshot carries. */
  lastSequence(element: string): number {
    return this.seq.get(element) ?? 0;
  }

  get count(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.liveBytes;
  }

  /** Oldest first: at most `max` events and `maxBytes` (at least one). */
  pending(max: number, maxBytes: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    let bytes = 0;
    for (const e of this.entries.values()) {
      if (out.length >= max || (out.length && bytes + e.bytes > maxBytes)) break;
      out.push(e);
      bytes += e.bytes;
    }
    return out;
  }

  /** Stores events (in this order) durably; makes room first when the outbox would overflow. */
  add(events: { kind: EventKind; event: StateEvent }[]): Promise<void> {
    if (!events.length) return Promise.resolve();
    const jsons = events.map((e) => JSON.stringify(e.event));
    const frames = events.map((e, i) => eventFrame(e.kind, jsons[i]!));
    const need = frames.reduce((n, f) => n + f.length, 0);
    const dropped = this.makeRoom(need);
    events.forEach((e, i) => {
      this.entries.set(e.event.id, { id: e.event.id, kind: e.kind, element: e.event.subject, sequence: e.event.data.sequence, json: jsons[i]!, bytes: frames[i]!.length });
      this.liveBytes += frames[i]!.length;
    });
    const out = dropped.length ? [frame({ t: 'R', why: 'dropped', ids: dropped }), ...frames] : frames;
    return this.append(Buffer.concat(out));
  }

  /** Oldest snapshots first, then oldest changes. */
  private makeRoom(need: number): string[] {
    const dropped: string[] = [];
    for (const kind of ['snapshot', 'change'] as const) {
      if (this.liveBytes + need <= this.limitBytes) break;
      for (const e of this.entries.values()) {
        if (this.liveBytes + need <= this.limitBytes) break;
        if (e.kind !== kind || this.busy.has(e.id)) continue;
        this.forget(e.id);
        dropped.push(e.id);
      }
    }
    // Only events being sent are left: the new ones are stored past the limit for the moment a
    // request takes, rather than dropped while the server may be taking the old ones.
    if (this.liveBytes + need > this.limitBytes) this.log('warn', `qualevent outbox over qualevent.outbox_size for a moment: ${this.liveBytes} bytes held by events being sent`);
    if (dropped.length) {
      this.dropped += dropped.length;
      this.log('warn', `qualevent outbox full: dropped ${dropped.length} oldest events (snapshots first), ${this.dropped} since start; raise qualevent.outbox_size or restore the link to Qe-Server`);
    }
    return dropped;
  }

  /** Events that left the outbox; unknown ids (already dropped) are ignored. */
  remove(ids: string[], why: 'sent' | 'parked'): Promise<void> {
    const gone = ids.filter((id) => this.forget(id));
    if (!gone.length) return Promise.resolve();
    return this.append(frame({ t: 'R', why, ids: gone })).then(() => this.maybeCompact());
  }

  /** Refused events are kept beside the outbox, one JSON line each, for someone to look at. */
  park(entries: OutboxEntry[], status: number, response: string): Promise<void> {
    const at = new Date().toISOString();
    const lines = entries.map((e) => `{"at":${JSON.stringify(at)},"status":${status},"response":${JSON.stringify(response)},"event":${e.json}}\n`).join('');
    const p = this.serial(async () => {
      const path = join(this.dir, PARKED_FILE);
      // A server refusing everything must not fill the disk: past a tenth of outbox_size the file
      // becomes parked.jsonl.1 (replacing the one before), so both stay under a fifth.
      const size = (await stat(path).catch(() => ({ size: 0 }))).size;
      if (size > 0 && size + lines.length > Math.max(64 * 1024, this.limitBytes / 10)) await rename(path, `${path}.1`);
      await appendFile(path, lines, { mode: 0o600 });
    });
    return p.then(() => this.remove(entries.map((e) => e.id), 'parked'));
  }

  get parkedPath(): string {
    return join(this.dir, PARKED_FILE);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private append(buf: Buffer): Promise<void> {
    return this.serial(async () => {
      this.fh ??= await open(join(this.dir, JOURNAL_FILE), 'a', 0o600);
      await this.fh.write(buf);
      await this.fh.datasync();
      this.fileBytes += buf.length;
    });
  }

  private maybeCompact(): Promise<void> {
    if (this.fileBytes < COMPACT_MIN_BYTES || this.fileBytes < 2 * this.liveBytes) return Promise.resolve();
    return this.compact();
  }

  /** The live events (and the change numbers) written to a new file, renamed over the old one. */
  private compact(): Promise<void> {
    return this.serial(async () => {
      const header: JournalRecord = { t: 'H', v: JOURNAL_VERSION, seq: Object.fromEntries(this.seq) };
      const parts = [frame(header), ...[...this.entries.values()].map((e) => eventFrame(e.kind, e.json))];
      const buf = Buffer.concat(parts);
      const path = join(this.dir, JOURNAL_FILE);
      const tmp = `${path}.new`;
      await writeFile(tmp, buf, { mode: 0o600, flush: true });
      await this.fh?.close();
      this.fh = undefined;
      await rename(tmp, path);
      const d = await open(this.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
      this.fileBytes = buf.length;
    });
  }

  async close(): Promise<void> {
    await this.chain;
    await this.fh?.close();
    this.fh = undefined;
  }
}

/** The file's size as it is on disk (tests, status). */
export async function journalBytes(dir: string): Promise<number> {
  return (await stat(join(dir, JOURNAL_FILE)).catch(() => ({ size: 0 }))).size;
}
