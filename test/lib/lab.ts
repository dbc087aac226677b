// Sending frames into a veth pair from a namespace with tcpreplay (the kernel path, as a NIC would).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildPcap } from '../../daemon/src/pcap/format.js';
import { Lab } from '../../daemon/src/util/netns.js';

export { Lab };

let counter = 0;
/** A namespace `gen` holding `<name>g`, its peer `<name>` stays in the root namespace for capture. */
export async function captureLink(lab: Lab, name: string): Promise<{ ns: string; genDev: string; capDev: string }> {
  const ns = `qe-t-${process.pid}-${counter++}`;
  await lab.namespace(ns);
  await lab.veth(`${name}g`, ns, name, undefined);
  return { ns, genDev: `${name}g`, capDev: name };
}

export async function sendFrames(ns: string, dev: string, frames: Buffer[], dir: string, opts: { pps?: number } = {}): Promise<void> {
  const file = join(dir, `send-${counter++}.pcap`);
  await writeFile(file, buildPcap(frames.map((data, i) => ({ tsNs: BigInt(i) * 1000n, data })), { nanos: false }));
  const rate = opts.pps ? ['--pps', String(opts.pps)] : ['--topspeed'];
  await execa('ip', ['netns', 'exec', ns, 'tcpreplay', '-q', '-i', dev, ...rate, file]);
}
