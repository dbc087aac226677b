// The OVA manifest, written by hand: VMware accepts exactly `SHA256(name)= hex` per line, which
// neither OpenSSL 3 (`SHA2-256(name)= `) nor `sha256sum --tag` (`SHA256 (name) = `) prints.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function manifest(paths: string[]): Promise<string> {
  const lines: string[] = [];
  for (const p of paths) lines.push(`SHA256(${basename(p)})= ${await sha256File(p)}`);
  return `${lines.join('\n')}\n`;
}
