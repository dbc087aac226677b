// Counts printed by the commands are formatted by hand (formatCount), not by ICU, to spare every
// query ICU's start; they must read exactly as toLocaleString('en-US') would write them.
import { describe, expect, it } from 'vitest';
import { formatCount } from '../daemon/src/config/units.js';

describe('formatCount', () => {
  it('groups thousands as en-US does', () => {
    const values = [0, 1, 12, 999, 1000, 1001, 12345, 999999, 1000000, 1234567890, 2 ** 53 - 1, -1, -1234, -999999];
    for (let i = 0; i < 2000; i++) values.push(Math.floor(Math.random() * 10 ** (1 + (i % 15))));
    for (const v of values) expect(formatCount(v), String(v)).toBe(v.toLocaleString('en-US'));
  });

  it('writes fixed and trimmed decimals as en-US does', () => {
    // Random doubles, never an exact half: ICU rounds ties to even and toFixed away from zero.
    for (let i = 0; i < 2000; i++) {
      const v = Math.random() * 10 ** (i % 9) * (i % 7 === 0 ? -1 : 1);
      expect(formatCount(v, 2), String(v)).toBe(v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
      expect(formatCount(v, 1, true), String(v)).toBe(v.toLocaleString('en-US', { maximumFractionDigits: 1 }));
    }
    expect(formatCount(2, 1, true)).toBe('2');
    expect(formatCount(1234.5, 1, true)).toBe('1,234.5');
    expect(formatCount(-0.001, 1, true)).toBe((-0.001).toLocaleString('en-US', { maximumFractionDigits: 1 }));
  });
});
