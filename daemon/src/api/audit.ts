// The audit trail of who took which packets: every extraction and flow query through the API, one
// JSON line each in the audit log (0640, appended) and the same line in the journal (the daemon's
// stderr). /audit reads the log's end, so what the console shows is what the file holds.
import { appendFile, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { log } from '../util/log.js';
import type { AuditEntry } from './types.js';

// The end of the file /audit reads: thousands of entries, whatever the log's size.
const TAIL_BYTES = 1024 * 1024;

export class AuditLog {
  constructor(readonly path: string) {}

  /**
   * Throws when the log cannot be written: an extraction is refused rather than left unrecorded.
   * Called before any packet is sent.
   */
  async ready(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o750 });
    await appendFile(this.path, '', { mode: 0o640 });
  }

  async write(entry: AuditEntry): Promise<void> {
    const line = JSON.stringify(entry);
    log('info', `audit: ${line}`);
    try {
      await appendFile(this.path, `${line}\n`, { mode: 0o640 });
    } catch (e) {
      log('error', `audit log ${this.path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the entry is in the journal only`);
    }
  }

  /** The newest entries first. */
  async recent(limit: number): Promise<AuditEntry[]> {
    let fh;
    try {
      fh = await open(this.path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - TAIL_BYTES);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      const lines = buf.toString('utf8').split('\n');
      if (start > 0) lines.shift(); // the first line may be cut
      const out: AuditEntry[] = [];
      for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) {
        if (!lines[i]) continue;
        try {
          out.push(JSON.parse(lines[i]!) as AuditEntry);
        } catch {
          // a line torn by a crash mid-append: skipped, the rest is still read
        }
      }
      return out;
    } finally {
      await fh.close();
    }
  }
}
