// Event ids: UUIDv7 (RFC 9562) from node:crypto, no package. The first 48 bits are the Unix time in
// milliseconds, so ids sort by creation and the server's index of them stays append-mostly; the
// 12 bits after the version hold a counter seeded at random each millisecond (RFC 9562 §6.2,
// method 1), so ids made within one millisecond still sort in the order they were made.
import { randomBytes } from 'node:crypto';

let lastMs = -1;
let counter = 0;

export function uuidv7(now: number = Date.now()): string {
  const b = randomBytes(16);
  if (now > lastMs) {
    lastMs = now;
    // Seeded below 0x800 so a burst of thousands in one millisecond still has room to count.
    counter = ((b[6]! & 0x07) << 8) | b[7]!;
  } else if (++counter > 0xfff) {
    // The counter overflowed (or the clock went back): borrow the next millisecond, keeping order.
    lastMs++;
    counter = 0;
  }
  const ms = lastMs;
  b[0] = Math.floor(ms / 2 ** 40) & 0xff;
  b[1] = Math.floor(ms / 2 ** 32) & 0xff;
  b[2] = (ms >>> 24) & 0xff;
  b[3] = (ms >>> 16) & 0xff;
  b[4] = (ms >>> 8) & 0xff;
  b[5] = ms & 0xff;
  b[6] = 0x70 | ((counter >>> 8) & 0x0f);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
