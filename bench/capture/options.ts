// Command-line options of `npm run bench:capture`. --quick changes the defaults only: anything
// given explicitly wins.

import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { parseSize } from '../../daemon/src/traffic/generate.js';
import type { SizeProfile } from '../../daemon/src/traffic/generate.js';
import type { GeneratorSpec } from './generators.js';
import { TOOL_NAMES, type ToolName } from './tools.js';

export interface BenchOptions {
  quick: boolean;
  live: boolean;
  offline: boolean;
  health: boolean;
  healthMinutes: number;
  /** Qualevent delivery latency (bench/capture/qualevent.ts). */
  qualevent: boolean;
  /** Helper CPU with 50 elements against none (bench/capture/elements.ts). */
  elements: boolean;
  tools: ToolName[];
  reps: number;
  seconds: number;
  /** Seconds each tool runs, armed, before traffic starts. */
  warmup: number;
  offlineBytes: number;
  profiles: SizeProfile[];
  generators: GeneratorSpec[];
  workDir: string;
  resultsDir: string | undefined;
  generatorCpu: number;
  captureCpu: number;
  seed: number;
}

export const USAGE = `usage: node build/bench/capture.js [options]
  --quick               short trials (2 s), one repetition, 512MB offline file: a smoke run
  --only live|offline|health|qualevent|elements   run one part only (health: /metrics scrape cost and daemon
                        memory; qualevent: state change to Qe-Server latency; elements: helper CPU
                        with 50 elements against none, IMIX)
  --health-minutes N    length of the memory trial (default 10; quick 1)
  --tools a,b           capture tools: ${TOOL_NAMES.join(', ')} (default: all)
  --reps N              repetitions per condition (default 3; quick 1)
  --seconds N           traffic per live trial (default 10; quick 2)
  --warmup N            seconds each tool runs armed before traffic (default 10; quick 1), so that
                        start-up work (ring set-up, a runtime's first heap reduction) is not packet work
  --offline-size SIZE   offline input, e.g. 4GB (default 4GB; quick 512MB)
  --profiles a,b        64, imix, 1500 (default: all)
  --generators a,b      trafgen, tcpreplay (default: both)
  --rates a,b           tcpreplay packet rates, pps or "top" (default 50000,150000; quick 100000)
  --workdir DIR         where captures and inputs go (default ${tmpdir()}); same filesystem for all
  --results DIR         where the JSON goes (default bench/results)
  --gen-cpu N           core for the generator (default 0)
  --capture-cpu N       core for the capture tool (default 1)
  --seed N              traffic seed (default 1)`;

function list(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      'health-minutes': { type: 'string' },
      tools: { type: 'string' },
      reps: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      'offline-size': { type: 'string' },
      profiles: { type: 'string' },
      generators: { type: 'string' },
      rates: { type: 'string' },
      workdir: { type: 'string' },
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
  if (values.only !== undefined && !['live', 'offline', 'health', 'qualevent', 'elements'].includes(values.only)) {
    throw new Error(`--only takes live, offline, health, qualevent or elements, not ${values.only}`);
  }
  const tools = values.tools ? list(values.tools) : [...TOOL_NAMES];
  for (const t of tools) if (!(TOOL_NAMES as readonly string[]).includes(t)) throw new Error(`unknown tool ${t}; known: ${TOOL_NAMES.join(', ')}`);
  const profiles = values.profiles ? list(values.profiles) : ['64', 'imix', '1500'];
  for (const p of profiles) if (!['64', 'imix', '1500'].includes(p)) throw new Error(`unknown profile ${p}`);
  const generatorNames = values.generators ? list(values.generators) : ['trafgen', 'tcpreplay'];
  const rates = list(values.rates ?? (quick ? '100000' : '50000,150000')).map((r): number | 'top' => {
    if (r === 'top') return 'top';
    const n = Number(r);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`bad rate ${r}`);
    return n;
  });
  const generators: GeneratorSpec[] = [];
  for (const g of generatorNames) {
    if (g === 'trafgen') generators.push({ kind: 'trafgen' });
    else if (g === 'tcpreplay') for (const pps of rates) generators.push({ kind: 'tcpreplay', pps });
    else throw new Error(`unknown generator ${g}`);
  }
  const int = (s: string | undefined, d: number, name: string, min = 1): number => {
    const n = s === undefined ? d : Number(s);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} needs an integer ≥ ${min}`);
    return n;
  };
  return {
    quick,
    live: values.only === undefined || values.only === 'live',
    offline: values.only === undefined || values.only === 'offline',
    health: values.only === undefined || values.only === 'health',
    qualevent: values.only === undefined || values.only === 'qualevent',
    elements: values.only === undefined || values.only === 'elements',
    healthMinutes: int(values['health-minutes'], quick ? 1 : 10, 'health-minutes'),
    tools: tools as ToolName[],
    reps: int(values.reps, quick ? 1 : 3, 'reps'),
    seconds: int(values.seconds, quick ? 2 : 10, 'seconds'),
    warmup: int(values.warmup, quick ? 1 : 10, 'warmup', 0),
    offlineBytes: parseSize(values['offline-size'] ?? (quick ? '512MB' : '4GB')),
    profiles: profiles as SizeProfile[],
    generators,
    workDir: values.workdir ?? tmpdir(),
    resultsDir: values.results,
    generatorCpu: int(values['gen-cpu'], 0, 'gen-cpu', 0),
    captureCpu: int(values['capture-cpu'], 1, 'capture-cpu', 0),
    seed: int(values.seed, 1, 'seed', 0),
  };
}
