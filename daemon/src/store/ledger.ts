// The store's space ledger, one mechanism for both retention modes. Every helper may append only
// the bytes it has been granted, and grants come out of the room left under the capacity, so the
// store can never pass its capacity whatever the timing of messages. Circular mode makes the room
// by deleting the oldest whole files before it grants; linear mode simply stops granting.
import { removeCaptureFile } from './index-files.js';
import { byAge, type StoredFile } from './usage.js';

interface Account {
  granted: number;
  appended: number;
  buffered: number;
  /** Bytes of this helper's own files deleted since it started. */
  freed: number;
  rate: number;
  lastAppended: number;
  lastAt: number;
  paths: Set<string>;
  /** Linear mode: was refused a grant for want of room (the store is full for it). */
  starved: boolean;
}

/**
 * The least a helper is granted, rate unknown or not: a burst from an idle link must not run out of
 * quota before the daemon answers (a busy daemon can take a good part of a second, and a full
 * 10 GbE link writes over 1 GB a second); live capture cannot wait, so a late grant loses packets.
 * In circular mode the grant is room made ahead by deleting the oldest files: 1 GiB is nothing on
 * a store of terabytes, and a small store caps it at half its capacity per helper.
 */
const MIN_GRANT = 2 ** 30;

/** What the ledger needs from the outside world, injected so its rules can be tested without a disk or a wall clock. */
export interface LedgerDeps {
  /** Milliseconds, for the rate of each helper. */
  now(): number;
  /** Deletes one closed file and its index. Rejects with the errno error; ENOENT means it is already gone. */
  remove(path: string): Promise<void>;
}

const realDeps: LedgerDeps = { now: () => Date.now(), remove: removeCaptureFile };

export class StoreLedger {
  private accounts = new Map<string, Account>();
  /** Closed files, oldest first. */
  private files: StoredFile[] = [];
  /** Bytes in the store that no running helper accounts for. */
  private settled = 0;
  deletedFiles = 0;
  deletedBytes = 0;

  constructor(
    private readonly circular: boolean,
    private capacityBytes: number,
    private readonly fileSizeBytes: number,
    private readonly onDelete: (f: StoredFile) => void = () => {},
    /** Free bytes on the store's filesystems: circular mode also keeps room there for every grant. */
    private readonly physicalFree: () => Promise<number> = async () => Number.MAX_SAFE_INTEGER,
    /** A file retention could not delete (it stays counted; the next oldest goes instead). */
    private readonly onUndeletable: (f: StoredFile, e: NodeJS.ErrnoException) => void = () => {},
    private readonly deps: LedgerDeps = realDeps,
  ) {}

  /** Bytes waiting in helpers' buffers for the disk. */
  private buffered(): number {
    let o = 0;
    for (const a of this.accounts.values()) o += a.buffered;
    return o;
  }

  /** A measurement of the store from disk. Running helpers' flushed bytes are in it and in their accounts. */
  measured(closed: StoredFile[], totalBytes: number): void {
    this.files = [...closed].sort(byAge);
    let onDisk = 0;
    for (const a of this.accounts.values()) onDisk += Math.max(0, a.appended - a.buffered - a.freed);
    // Helpers only grow their files between their report and the measurement, so this errs high: safe.
    const settled = totalBytes - onDisk;
    this.settled = Math.max(0, settled);
    // Less on disk than the helpers wrote: their files were removed by hand. That room is free again.
    const first = this.accounts.values().next().value;
    if (settled < 0 && first) first.freed += -settled;
  }

  get usedBytes(): number {
    let used = this.settled;
    for (const a of this.accounts.values()) used += a.appended - a.freed;
    return used;
  }

  get oldestNs(): bigint | undefined {
    return this.files[0]?.firstNs;
  }

  /** Nothing more can be granted (linear mode's "full"). */
  get full(): boolean {
    return this.unreserved() === 0 && !this.circular;
  }

  private unreserved(): number {
    let held = this.settled;
    for (const a of this.accounts.values()) held += a.granted - a.freed;
    return Math.max(0, this.capacityBytes - held);
  }

  private targetOf(a: Account): number {
    // Several seconds of traffic at the current rate: capture never waits for the daemon.
    // Whole bytes: the helper reads its quota as an integer.
    return Math.floor(Math.min(Math.max(MIN_GRANT, 4 * a.rate), this.capacityBytes / (2 * Math.max(1, this.accounts.size))));
  }

  /**
   * Room the disks themselves must keep: what can reach them before the next check (what helpers
   * hold in memory, or a second of traffic, whichever is more) and two files of slack.
   */
  private diskNeed(): number {
    let rate = 0;
    for (const a of this.accounts.values()) rate += a.rate;
    return Math.max(this.buffered(), rate) + 2 * this.fileSizeBytes;
  }

  /** Circular mode: delete the oldest closed files until `bytes` can be granted. Returns how many went. */
  private async makeRoom(bytes: number): Promise<number> {
    if (!this.circular) return 0;
    let deleted = 0;
    // Room under the capacity, and room on the disk itself in case other data filled it.
    const need = this.diskNeed();
    while (this.files.length && (this.unreserved() < bytes || (await this.physicalFree()) < need)) {
      const f = this.files.shift()!;
      const failed = await this.deps.remove(f.path).then(
        () => undefined,
        (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : e), // ENOENT: removed by hand, already gone
      );
      if (failed) {
        // Skipped, not retried here: the same failure every time would stop retention for good.
        // Its bytes stay counted until a measurement finds it gone.
        this.onUndeletable(f, failed);
        continue;
      }
      const owner = [...this.accounts.values()].find((a) => a.paths.has(f.path));
      if (owner) {
        owner.freed += f.size;
        owner.paths.delete(f.path);
      } else this.settled = Math.max(0, this.settled - f.size);
      this.deletedFiles++;
      this.deletedBytes += f.size;
      deleted++;
      this.onDelete(f);
    }
    return deleted;
  }

  /**
   * The filesystem filled up before the capacity did (other data, a smaller disk): in circular
   * mode the oldest files make room on the disk for two more files.
   */
  async diskFull(): Promise<number> {
    return this.makeRoom(0);
  }

  /**
   * Circular mode, at each helper report: the disk keeps room for what arrives before the next
   * one, so when other data fills the filesystem the oldest captures go first, before a write
   * fails; grants alone would not notice, as they only count against the capacity.
   */
  async keepDiskRoom(): Promise<number> {
    return this.makeRoom(0);
  }

  get capacity(): number {
    return this.capacityBytes;
  }

  /** A helper starts: its first quota, passed as --quota. */
  async open(iface: string): Promise<number> {
    const a: Account = { granted: 0, appended: 0, buffered: 0, freed: 0, rate: 0, lastAppended: 0, lastAt: this.deps.now(), paths: new Set(), starved: false };
    this.accounts.set(iface, a);
    const want = this.targetOf(a);
    await this.makeRoom(want);
    a.granted = Math.min(want, this.unreserved());
    return a.granted;
  }

  /** A helper reported; returns its new cumulative quota when it gets more room. */
  async update(iface: string, appended: number, buffered: number): Promise<number | undefined> {
    const a = this.accounts.get(iface);
    if (!a) return undefined;
    const now = this.deps.now();
    const dt = (now - a.lastAt) / 1000;
    if (dt > 0) a.rate = Math.max(0, appended - a.lastAppended) / dt;
    a.lastAppended = appended;
    a.lastAt = now;
    a.appended = appended;
    a.buffered = buffered;
    const target = this.targetOf(a);
    const left = a.granted - a.appended;
    if (left >= target / 2) return undefined;
    await this.makeRoom(target - left);
    const wanting = [...this.accounts.values()].filter((x) => x.granted - x.appended < this.targetOf(x) / 2).length;
    const room = this.unreserved();
    const more = Math.min(target - left, Math.floor(room / Math.max(1, wanting)));
    // A full linear store resumes when a file's worth of room is back (files removed by hand),
    // not for the few kilobytes a closed file's index gives back when it replaces the open file's
    // (a measurement finds less on disk than was appended): those would let a handful of packets
    // in after the ones already dropped, a hole in what linear mode promises to keep.
    if (!this.circular && a.starved && more < Math.min(this.fileSizeBytes, target - left)) return undefined;
    if (more <= 0) {
      a.starved = true;
      return undefined;
    }
    a.starved = false;
    a.granted += more;
    return a.granted;
  }

  /** Grants to every helper that is short, from its last report (after a measurement found room). */
  async regrant(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const [iface, a] of this.accounts) {
      const q = await this.update(iface, a.appended, a.buffered);
      if (q !== undefined) out.set(iface, q);
    }
    return out;
  }

  fileClosed(iface: string, f: StoredFile): void {
    let i = this.files.length;
    while (i > 0 && byAge(this.files[i - 1]!, f) > 0) i--;
    this.files.splice(i, 0, f);
    this.accounts.get(iface)?.paths.add(f.path);
  }

  /** A helper ended: what it may have written stays counted until the next measurement. */
  close(iface: string): void {
    const a = this.accounts.get(iface);
    if (!a) return;
    this.settled += a.granted - a.freed;
    this.accounts.delete(iface);
  }
}
