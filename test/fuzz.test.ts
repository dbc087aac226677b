// The libFuzzer targets (daemon/native/fuzz): every kept crash input and hostile fixture is replayed
// through each, then every target fuzzes for a bounded time (QE_FUZZ_SECONDS, default 60; they run
// side by side, so the wall time is about that whatever their number). Any crash, leak, hang or
// sanitizer report fails. `npm run fuzz -- --minutes N` runs longer.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { root } from './lib/cli.js';

const seconds = Number(process.env.QE_FUZZ_SECONDS ?? 60);
const out = join(root, 'build', 'native-fuzz');
const targets = ['import-classic', 'import-pcapng', 'extract', 'torn-cut', 'index', 'index-read', 'flow', 'elements', 'field-dns', 'field-http', 'flowstat', 'bpf-run'];
const env = { ...process.env, ASAN_OPTIONS: 'halt_on_error=1:detect_leaks=1', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' };

beforeAll(() => {
  execFileSync('make', ['-s', '-C', join(root, 'daemon', 'native'), 'fuzz'], { stdio: 'inherit' });
}, 300_000);

/** Inputs replayed through every target: crashes found (once fixed) and the hostile fixtures. */
function replayInputs(target: string): string[] {
  const dirs = [join(root, 'test', 'fixtures', 'hostile'), join(root, 'daemon', 'native', 'fuzz', 'regressions', target)];
  return dirs.filter(existsSync).flatMap((d) => readdirSync(d).filter((f) => /\.pcap(ng)?$|^crash-|^leak-|^timeout-/.test(f)).map((f) => join(d, f)));
}

describe('fuzzing', () => {
  it('has every target built', () => {
    expect(readdirSync(out).filter((f) => f.startsWith('fuzz-')).sort()).toEqual(targets.map((t) => `fuzz-${t}`).sort());
  });

  it.each(targets)('replays the kept inputs through %s', (target) => {
    const inputs = replayInputs(target);
    expect(inputs.length).toBeGreaterThan(20);
    const r = spawnSync(join(out, `fuzz-${target}`), ['-timeout=10', '-rss_limit_mb=2048', ...inputs], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr.slice(-4000)).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`Executed ${inputs[inputs.length - 1]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} in`));
  });

  it(
    `finds nothing in ${seconds} s per target`,
    () => {
      const r = spawnSync(join(root, 'scripts', 'fuzz'), ['--seconds', String(seconds)], { encoding: 'utf8', timeout: (seconds + 240) * 1000 });
      const report = `${r.stdout}\n${r.stderr}`;
      expect(r.status, report).toBe(0);
      for (const t of targets) expect(report, report).toMatch(new RegExp(`fuzz ${t}: ok, \\d+ inputs`));
    },
    (seconds + 300) * 1000,
  );
});
