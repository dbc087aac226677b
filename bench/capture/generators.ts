// Traffic sources for live trials, both run inside the generator namespace on their own core:
// trafgen (netsniff-ng) at full speed from a config of our frames, tcpreplay at a fixed packet
// rate (or its top speed) from a pcap of the same frames.

import { GENERATOR_IF, NAMESPACE } from './netns.js';
import { run } from './proc.js';

export type GeneratorSpec =
  | { kind: 'trafgen' }
  /** `packets`: send exactly that many once (a known count), instead of looping for the trial time. */
  | { kind: 'tcpreplay'; pps: number | 'top'; packets?: number };

export interface GeneratorInputs {
  trafgenConfig: string;
  pcap: string;
}

export interface GeneratorRun {
  command: string[];
  exitCode: number | undefined;
  /** Packets the generator says it sent. */
  reportedPackets: number | undefined;
  output: string;
}

export function describeGenerator(g: GeneratorSpec): string {
  if (g.kind === 'trafgen') return 'trafgen max';
  const rate = g.pps === 'top' ? 'tcpreplay top' : `tcpreplay ${formatRate(g.pps)}`;
  return g.packets ? `${rate}, ${g.packets} packets` : rate;
}

export function formatRate(pps: number): string {
  return pps >= 1e6 ? `${pps / 1e6} Mpps` : `${pps / 1e3} kpps`;
}

export async function runGenerator(g: GeneratorSpec, inputs: GeneratorInputs, seconds: number, cpu: number): Promise<GeneratorRun> {
  const inNs = ['ip', 'netns', 'exec', NAMESPACE, 'taskset', '-c', String(cpu)];
  let command: string[];
  if (g.kind === 'trafgen') {
    // One worker (-P 1) on the pinned core; trafgen has no duration option, so timeout sends the
    // SIGINT that makes it print its totals. It cannot tune socket memory from inside a namespace.
    command = [...inNs, 'timeout', '-s', 'INT', '-k', '5', String(seconds),
      'trafgen', '-i', inputs.trafgenConfig, '-o', GENERATOR_IF, '-P', '1', '--no-sock-mem'];
  } else {
    const rate = g.pps === 'top' ? ['--topspeed'] : ['--pps', String(g.pps)];
    const amount = g.packets ? ['--limit', String(g.packets)] : ['--loop', '0', '--duration', String(seconds)];
    command = [...inNs, 'tcpreplay', '-i', GENERATOR_IF, ...rate, ...amount, '--preload-pcap', inputs.pcap];
  }
  const r = await run(command[0]!, command.slice(1), { reject: false, timeoutMs: (seconds + 60) * 1000 });
  const output = `${r.stdout}\n${r.stderr}`;
  return { command, exitCode: r.exitCode, reportedPackets: reportedPackets(g, output), output: output.trim() };
}

function reportedPackets(g: GeneratorSpec, output: string): number | undefined {
  const m =
    g.kind === 'trafgen'
      ? /(\d+)\s+packets outgoing/.exec(output)
      : /Actual:\s+(\d+)\s+packets/.exec(output);
  return m ? Number(m[1]) : undefined;
}
