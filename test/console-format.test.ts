// The console's pure parts, in Node: how numbers and times are written, and the store timeline's
// buckets (the browser test sees them drawn; here the arithmetic is held exactly).
import { describe, expect, it } from 'vitest';
import { bitRate, bytes, duration, num, percent, pktRate, toMs, utc } from '../console/src/format.js';
import { bytesPerInterval, timelineInterval } from '../console/src/pages/traffic.js';

describe('console formats', () => {
  it('writes numbers with thousands separators and units', () => {
    expect(num(1234567)).toBe('1,234,567');
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1536)).toBe('1.50 KiB');
    expect(bytes(64 * 2 ** 30)).toBe('64.0 GiB');
    expect(bytes(1234 * 2 ** 40)).toBe('1.21 PiB');
    expect(bitRate(987_654_321)).toBe('988 Mbit/s');
    expect(bitRate(1_250_000_000)).toBe('1.25 Gbit/s');
    expect(pktRate(123456.7)).toBe('123,457 pkt/s');
    expect(pktRate(0.5)).toBe('0.5 pkt/s');
    expect(percent(12, 1_000_000)).toBe('0.001 %');
    expect(percent(1, 0)).toBe('–');
    expect(duration(2 * 86400 + 3 * 3600 + 60)).toBe('2 d 3 h');
    expect(duration(3660)).toBe('1 h 1 min');
    expect(duration(42)).toBe('42 s');
  });

  it('reads the API\'s nanosecond ISO times and writes UTC', () => {
    expect(toMs('2026-12-06T10:09:31.123456789Z')).toBe(Date.UTC(2026, 11, 6, 10, 9, 31, 123));
    expect(utc('2026-12-06T10:09:31.999999999Z')).toBe('2026-12-06 10:09:31 UTC');
    expect(utc(Date.UTC(2026, 0, 2, 3, 4, 5))).toBe('2026-01-02 03:04:05 UTC');
  });
});

describe('store timeline', () => {
  it('picks a whole-second interval giving at most about 240 points', () => {
    expect(timelineInterval(60)).toBe(1);
    expect(timelineInterval(3600)).toBe(15);
    expect(timelineInterval(2 * 86400)).toBe(900);
    expect(timelineInterval(400 * 86400)).toBe(2 * 86400);
  });

  it('spreads each file\'s bytes over its span, bucket by bucket, losing none in the range', () => {
    const iso = (s: number) => new Date(s * 1000).toISOString().replace('Z', '000000Z');
    const file = (first: number, last: number, b: number) => ({ path: '', iface: 'eth0', first: iso(first), last: iso(last), packets: 1, bytes: b, size: b, partial: false, linktype: 1 });
    const { x, bytes: per } = bytesPerInterval([file(1000, 1030, 3000), file(1035, 1035, 7), file(1050, 1070, 200)], 1000, 1060, 10);
    expect(x).toEqual([1000, 1010, 1020, 1030, 1040, 1050]);
    // 3000 over 30 s: 1000 a bucket; the instant file all in its bucket; the last file's half that falls in the range.
    expect(per).toEqual([1000, 1000, 1000, 7, 0, 100]);
  });
});
