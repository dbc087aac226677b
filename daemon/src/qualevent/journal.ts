// The outbox's file: an append-only journal of CRC-framed JSON records. Only this daemon writes it
// (no C reader), so its one definition is here; docs/ARCHITECTURE.md "Qualevent outbox" says why a
// journal and not SQLite.
//
// A record is: u32le length of the payload, u32le CRC-32 of the payload, the payload (UTF-8 JSON).
// Appends are fsync'd before an event counts as stored. A kill -9 or a power loss can leave a torn
// last record (short, or with a CRC that does not match): reading stops at the first bad record
// and the file is cut there, since nothing after a bad length can be framed again.
import { crc32 } from 'node:zlib';
import type { EventKind, StateEvent } from './events.js';

export const JOURNAL_FILE = 'journal';
export const JOURNAL_VERSION = 1;
const FRAME_HEAD = 8;
/** No record is near this; a larger length is a torn or corrupt header, not a record to wait for. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

export type JournalRecord =
  /** First record of every journal file: the format, and the last change number of each element
   *  (the only state that must outlive the events that carried it). */
  | { t: 'H'; v: number; seq: Record<string, number> }
  /** An event stored, not yet delivered. */
  | { t: 'E'; kind: EventKind; event: StateEvent }
  /** Events that left the outbox: delivered (2xx), parked (refused by the server), dropped (outbox full). */
  | { t: 'R'; why: 'sent' | 'parked' | 'dropped'; ids: string[] };

export function frame(r: JournalRecord): Buffer {
  return framePayload(JSON.stringify(r));
}

/** An `E` record around an event already serialised (the outbox keeps events as JSON text). */
export function eventFrame(kind: EventKind, eventJson: string): Buffer {
  return framePayload(`{"t":"E","kind":${JSON.stringify(kind)},"event":${eventJson}}`);
}

function framePayload(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const head = Buffer.alloc(FRAME_HEAD);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload), 4);
  return Buffer.concat([head, payload]);
}

export interface ReadJournal {
  records: { record: JournalRecord; bytes: number }[];
  /** Length of the whole records; the file is cut here when shorter than the file. */
  goodBytes: number;
  /** Why reading stopped before the end, when it did. */
  torn?: string;
}

export function readJournal(buf: Buffer): ReadJournal {
  const records: ReadJournal['records'] = [];
  let at = 0;
  let torn: string | undefined;
  while (at < buf.length) {
    if (buf.length - at < FRAME_HEAD) {
      torn = `${buf.length - at} bytes of a record header`;
      break;
    }
    const len = buf.readUInt32LE(at);
    if (len > MAX_RECORD_BYTES) {
      torn = `a record length of ${len} bytes`;
      break;
    }
    if (buf.length - at - FRAME_HEAD < len) {
      torn = `a record of ${len} bytes with ${buf.length - at - FRAME_HEAD} written`;
      break;
    }
    const payload = buf.subarray(at + FRAME_HEAD, at + FRAME_HEAD + len);
    if (crc32(payload) !== buf.readUInt32LE(at + 4)) {
      torn = 'a record whose CRC does not match';
      break;
    }
    let record: JournalRecord;
    try {
      record = JSON.parse(payload.toString('utf8')) as JournalRecord;
    } catch {
      torn = 'a record that is not JSON';
      break;
    }
    records.push({ record, bytes: FRAME_HEAD + len });
    at += FRAME_HEAD + len;
  }
  return { records, goodBytes: at, ...(torn ? { torn } : {}) };
}
