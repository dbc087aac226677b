// The handshake round-trip histogram's buckets as the helper fills them: bucket b holds the round
// trips of floor(4*log2(max(us, 1))) = b, so each bucket spans a factor 2^(1/4) (about 19%).
// INTERIM: replaced by the helper file module's own definition (element-format.h's twin) on merge.

/** The `p`th percentile of a histogram (bucket → count) in ms: the geometric middle of its bucket; null when empty. */
export function rttPercentileMs(hist: Map<number, number>, p: number): number | null {
  let total = 0;
  for (const n of hist.values()) total += n;
  if (!total) return null;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (const b of [...hist.keys()].sort((x, y) => x - y)) {
    seen += hist.get(b)!;
    if (seen >= rank) return 2 ** ((b + 0.5) / 4) / 1000;
  }
  return null;
}
