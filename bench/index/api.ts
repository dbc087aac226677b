// The API row of bench:index: the same questions asked of a running daemon over its HTTP API with
// curl, as `stenoread` asks a running `stenographer` (a shell script around curl). The command
// line pays Node.js's start, the config and the catalog on every query; a client of the daemon
// pays none of them, so this row is the like-for-like comparison with stenoread, and what a script
// issuing many queries gets.
//
// The daemon runs on the bench store's own folder with the API on a free loopback port, capturing
// on a veth pair of its own that carries nothing (so the store gains no packet), pinned to the CPU
// the queries run on; its tokens and audit log live in a scratch state folder.

import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { onCleanup } from '../capture/cleanup.js';
import { freePort, run, sleep, TimedProcess, type Measured } from '../capture/proc.js';
import { DAEMON_CLI, daemonConfig } from '../capture/tools.js';
import type { Range } from './query.js';
import type { Store } from './store.js';

const VETH = ['qe-bapi0', 'qe-bapi1'] as const;

export interface ApiDaemon {
  /** http://127.0.0.1:PORT/api/v1 */
  base: string;
  token: string;
  stop(): Promise<Measured>;
}

/** Starts `qe-packets capture` on `store`'s folder with the API on; resolves once it answers. */
export async function startApiDaemon(store: Store, capacityBytes: number, fileSizeMB: number, cpu: number, scratch: string): Promise<ApiDaemon> {
  const dir = join(scratch, 'api-daemon');
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'state'), { recursive: true });
  await run('ip', ['link', 'del', VETH[0]], { reject: false });
  await run('ip', ['link', 'add', VETH[0], 'type', 'veth', 'peer', 'name', VETH[1]]);
  // No IPv6 on either end: bringing a link up sends router and multicast listener solicitations,
  // which the daemon would write into the store.
  for (const v of VETH) await writeFile(`/proc/sys/net/ipv6/conf/${v}/disable_ipv6`, '1\n');
  await run('ip', ['link', 'set', VETH[0], 'up']);
  await run('ip', ['link', 'set', VETH[1], 'up']);
  const unregister = onCleanup(`ip link del ${VETH[0]}`, async () => {
    await run('ip', ['link', 'del', VETH[0]], { reject: false });
  });
  const port = await freePort();
  const config = join(dir, 'api.yaml');
  await writeFile(
    config,
    daemonConfig({ iface: VETH[0], outDir: store.dir, capacityMB: Math.ceil(capacityBytes / 1e6), fileSizeMB, bufferMiB: 64, snaplen: 262144, apiListen: `127.0.0.1:${port}`, controlSocket: join(dir, 'control.sock') }),
  );
  const env = ['env', `QE_PACKETS_STATE_DIR=${join(dir, 'state')}`];
  const tok = await run(env[0]!, [...env.slice(1), process.execPath, DAEMON_CLI, 'token', 'create', 'bench', '--role', 'analyst', '--json']);
  const token = (JSON.parse(tok.stdout) as { token: string }).token;
  const daemon = TimedProcess.start([...env, process.execPath, DAEMON_CLI, 'capture', '--config', config], { cpu, timeFile: join(dir, 'time.txt') });
  const base = `http://127.0.0.1:${port}/api/v1`;
  const stop = async () => {
    const m = await daemon.stop('SIGTERM', 30_000);
    await run('ip', ['link', 'del', VETH[0]], { reject: false });
    await unregister();
    // The idle link must have added nothing to the store the other rows read.
    const added = (await readdir(store.dir)).filter((n) => n.includes(`_${VETH[0]}.`));
    if (added.length) console.log(`!!! the API daemon wrote ${added.length} file(s) into the store from its idle link: ${added.join(', ')}`);
    return m;
  };
  const until = Date.now() + 60_000;
  for (;;) {
    const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${base}/info`], { reject: false });
    if (r.stdout === '200') break;
    if (Date.now() > until) {
      const m = await stop();
      throw new Error(`the daemon's API never answered on ${base}: ${m.stderr.slice(-300)}`);
    }
    await sleep(200);
  }
  return { base, token, stop };
}

/** curl of GET `path` with `params` into `out` (-f: an HTTP error is a failed command). */
export function apiCommand(api: ApiDaemon, path: string, params: Record<string, string>, out: string): string[] {
  const q = new URLSearchParams(params).toString();
  return ['curl', '-s', '-f', '-H', `Authorization: Bearer ${api.token}`, '-o', out, `${api.base}/${path}?${q}`];
}

export function apiExtractCommand(api: ApiDaemon, range: Range, filter: string, out: string): string[] {
  return apiCommand(api, 'extract', { from: range.from, to: range.to, filter }, out);
}
