// Command-line options of `npm run bench:index`. --quick changes the defaults only: anything given
// explicitly wins.

import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';

export interface IndexBenchOptions {
  quick: boolean;
  /** Store size in bytes of pcap (the issue asks for at least 20 GB). */
  storeBytes: number;
  /** Traffic is generated, imported and deleted one chunk at a time, so only one chunk of input is
   * ever on disk beside the store. */
  chunkBytes: number;
  /** Repetitions of each timed query (medians). */
  reps: number;
  workDir: string;
  resultsDir: string | undefined;
  steno: boolean;
  live: boolean;
  /** Live capture-cost trials: seconds of traffic and the tcpreplay rate. */
  liveSeconds: number;
  livePps: number;
  /** How long to wait for stenoread's answer to be complete after the replay. */
  stenoWaitS: number;
  generatorCpu: number;
  captureCpu: number;
  seed: number;
}

export const USAGE = `usage: npm run bench:index -- [options]   (or node build/bench/index.js)
  --gb N             store size in GB of pcap (default 20, the issue's minimum; quick 1)
  --quick            a ~1 GB run to check the bench: one repetition, short live trials
  --work DIR         where the store and the inputs go (default ${tmpdir()}); it needs about
                     1.05 × the store plus two chunks, plus Stenographer's slice twice
  --chunk-mb N       traffic generated and imported per step (default 1000; quick 128)
  --reps N           repetitions of each timed query (default 3; quick 1)
  --skip-steno       no Stenographer rows
  --skip-live        no live rows (capture cost, time until findable)
  --live-seconds N   traffic per capture-cost trial (default 10; quick 2)
  --live-pps N       tcpreplay rate of the capture-cost trials (default 100000)
  --steno-wait N     seconds to wait for stenoread's answer to be complete (default 300)
  --results DIR      where the JSON goes (default bench/results)
  --gen-cpu N        core for the generator (default 0)
  --capture-cpu N    core for the measured tool (default 1)
  --seed N           traffic seed (default 1)`;

export function parseIndexOptions(argv: string[]): IndexBenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      gb: { type: 'string' },
      quick: { type: 'boolean', default: false },
      work: { type: 'string' },
      'chunk-mb': { type: 'string' },
      reps: { type: 'string' },
      'skip-steno': { type: 'boolean', default: false },
      'skip-live': { type: 'boolean', default: false },
      'live-seconds': { type: 'string' },
      'live-pps': { type: 'string' },
      'steno-wait': { type: 'string' },
      results: { type: 'string' },
      'gen-cpu': { type: 'string' },
      'capture-cpu': { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const num = (s: string | undefined, d: number, name: string, min: number): number => {
    const n = s === undefined ? d : Number(s);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} needs a number ≥ ${min}, not ${s}`);
    return n;
  };
  const storeBytes = num(values.gb, quick ? 1 : 20, 'gb', 0.1) * 1e9;
  const chunkBytes = num(values['chunk-mb'], quick ? 128 : 1000, 'chunk-mb', 16) * 1e6;
  if (storeBytes < 2 * chunkBytes) throw new Error(`--gb must hold at least two chunks (--chunk-mb ${chunkBytes / 1e6})`);
  return {
    quick,
    storeBytes,
    chunkBytes,
    reps: Math.round(num(values.reps, quick ? 1 : 3, 'reps', 1)),
    workDir: values.work ?? tmpdir(),
    resultsDir: values.results,
    steno: !values['skip-steno'],
    live: !values['skip-live'],
    liveSeconds: num(values['live-seconds'], quick ? 2 : 10, 'live-seconds', 1),
    livePps: Math.round(num(values['live-pps'], 100_000, 'live-pps', 1000)),
    stenoWaitS: num(values['steno-wait'], 300, 'steno-wait', 10),
    generatorCpu: Math.round(num(values['gen-cpu'], 0, 'gen-cpu', 0)),
    captureCpu: Math.round(num(values['capture-cpu'], 1, 'capture-cpu', 0)),
    seed: Math.round(num(values.seed, 1, 'seed', 0)),
  };
}
