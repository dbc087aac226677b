// Runs a measured program the same way for every tool: pinned with taskset, wrapped in GNU time
// (user and system CPU of the program and every child it waited for), in its own process group
// so cleanup can always kill it. Signals go to the program itself: GNU time ignores SIGINT.

import { createServer } from 'node:net';
import { readFile, readdir } from 'node:fs/promises';
import { execa, type ResultPromise } from 'execa';
import { onCleanup } from './cleanup.js';

const TIME = '/usr/bin/time';
// Wall seconds, user seconds, system seconds, max RSS in KiB: one line, last in the file.
const TIME_FORMAT = '%e %U %S %M';
const CLOCK_TICKS = 100; // USER_HZ, the unit of /proc/<pid>/stat times on Linux

export interface Measured {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  /** From GNU time. */
  cpuUserS: number;
  cpuSysS: number;
  maxRssKiB: number;
  /** From the benchmark's own clock, start to exit. */
  wallS: number;
  /** The program had to be killed with SIGKILL to end. */
  killed: boolean;
}

export interface StartOptions {
  cpu: number;
  /** Where GNU time writes its line. */
  timeFile: string;
  cwd?: string;
}

/**
 * The bench's environment without what a shell of the machine running it may add and an appliance
 * has not: NODE_EXTRA_CA_CERTS (set on the development VMs) makes every Node.js start parse ~140
 * certificates, 0.02 -> 0.06 s for `node -e 0` warm, a cost no tool measured here asks for.
 */
function measuredEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

export class TimedProcess {
  readonly done: Promise<Measured>;
  private readonly sub: ResultPromise;
  private readonly started = process.hrtime.bigint();
  private killed = false;
  private exited = false;
  private program: number | undefined;
  private readonly unregister: () => Promise<void>;

  private constructor(
    readonly command: readonly string[],
    private readonly opts: StartOptions,
  ) {
    this.sub = execa('taskset', ['-c', String(opts.cpu), TIME, '-f', TIME_FORMAT, '-o', opts.timeFile, ...command], {
      detached: true,
      reject: false,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      maxBuffer: 64 * 1024 * 1024,
      env: measuredEnv(),
      extendEnv: false,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    const pgid = this.sub.pid;
    this.unregister = onCleanup(`kill ${command[0]}`, () => {
      if (!this.exited && pgid !== undefined) killGroup(pgid);
    });
    this.done = this.finish();
  }

  static start(command: readonly string[], opts: StartOptions): TimedProcess {
    return new TimedProcess(command, opts);
  }

  private async finish(): Promise<Measured> {
    const r = await this.sub;
    this.exited = true;
    const wallS = Number(process.hrtime.bigint() - this.started) / 1e9;
    await this.unregister();
    const time = await readTimeFile(this.opts.timeFile);
    return {
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: typeof r.stdout === 'string' ? r.stdout : '',
      stderr: typeof r.stderr === 'string' ? r.stderr : '',
      ...time,
      wallS,
      killed: this.killed,
    };
  }

  /** The measured program: the child that GNU time forked. */
  async programPid(timeoutMs = 5000): Promise<number | undefined> {
    const pid = this.sub.pid;
    if (this.program !== undefined || pid === undefined) return this.program;
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) return undefined;
      const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
      if (comm.trim() === 'time') {
        const kids = await children(pid);
        if (kids[0] !== undefined) return (this.program = kids[0]);
      }
      if (Date.now() >= until) return undefined;
      await sleep(20);
    }
  }

  /** CPU ticks used so far by the program and all its descendants. */
  async treeCpuTicks(): Promise<number> {
    const pid = await this.programPid(0);
    return pid === undefined ? 0 : treeTicks(pid);
  }

  /**
   * Nanoseconds on CPU so far of every thread of the program and its live descendants
   * (/proc/PID/task/TID/schedstat): 10 ms ticks are too coarse for a short trial at a low rate.
   * Children already reaped are not counted; a capture's helper lives as long as the capture.
   */
  async treeCpuNs(comm?: string): Promise<number> {
    const pid = await this.programPid(0);
    return pid === undefined ? 0 : treeNs(pid, comm);
  }

  /**
   * Waits until the program has used (almost) no CPU for `quietMs`, i.e. has written out what it
   * had buffered. Returns false if it was still busy after `maxMs`.
   */
  async waitIdle(quietMs: number, maxMs: number): Promise<boolean> {
    const step = 100;
    const until = Date.now() + maxMs;
    const window: number[] = [];
    const need = Math.ceil(quietMs / step);
    while (Date.now() < until && !this.exited) {
      window.push(await this.treeCpuTicks());
      if (window.length > need + 1) window.shift();
      // At most 2 ticks (20 ms) in the window: a timer or a stats line, not packet work.
      if (window.length === need + 1 && window[window.length - 1]! - window[0]! <= 2) return true;
      await sleep(step);
    }
    return this.exited;
  }

  /**
   * Sends `sig` to the program; SIGKILLs it if it has not exited after `graceMs`. Only the
   * program is killed, so GNU time still reports its resource use; the whole group only if even
   * that does not end it.
   */
  async stop(sig: NodeJS.Signals, graceMs: number): Promise<Measured> {
    const pid = await this.programPid(1000);
    const signal = (s: NodeJS.Signals) => {
      if (pid === undefined || this.exited) return;
      try {
        process.kill(pid, s);
      } catch {
        // Already gone.
      }
    };
    signal(sig);
    if (!(await this.exitsWithin(graceMs))) {
      this.killed = true;
      signal('SIGKILL');
      if (!(await this.exitsWithin(5000)) && this.sub.pid !== undefined) killGroup(this.sub.pid);
    }
    return this.done;
  }

  private async exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((res) => (timer = setTimeout(() => res(false), ms)));
    const r = await Promise.race([this.done.then(() => true as const, () => true as const), timeout]);
    clearTimeout(timer);
    return r;
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}

async function readTimeFile(path: string): Promise<{ cpuUserS: number; cpuSysS: number; maxRssKiB: number }> {
  const text = await readFile(path, 'utf8').catch(() => '');
  // Earlier lines, if any, say how the program ended ("Command terminated by signal 9").
  const last = text.trim().split('\n').pop() ?? '';
  const [, user, sys, rss] = last.split(/\s+/).map(Number);
  if (user === undefined || sys === undefined || Number.isNaN(user) || Number.isNaN(sys)) {
    throw new Error(`GNU time wrote no usable line to ${path}: ${JSON.stringify(text)}`);
  }
  return { cpuUserS: user, cpuSysS: sys, maxRssKiB: rss ?? 0 };
}

async function children(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const out: number[] = [];
  for (const t of tasks) {
    const text = await readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '');
    for (const c of text.trim().split(/\s+/)) if (c) out.push(Number(c));
  }
  return out;
}

async function treeTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime, and cutime, cstime of children already waited for, so the sum never drops.
  let ticks = Number(f[11] ?? 0) + Number(f[12] ?? 0) + Number(f[13] ?? 0) + Number(f[14] ?? 0);
  for (const c of await children(pid)) ticks += await treeTicks(c);
  return ticks;
}

/** `comm`: count only the processes of that name in the tree (e.g. the capture helper alone). */
async function treeNs(pid: number, comm?: string): Promise<number> {
  let ns = 0;
  const name = comm === undefined ? undefined : (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
  if (comm === undefined || name === comm) {
    for (const t of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      const text = await readFile(`/proc/${pid}/task/${t}/schedstat`, 'utf8').catch(() => '');
      ns += Number(text.split(' ')[0] ?? 0) || 0;
    }
  }
  for (const c of await children(pid)) ns += await treeNs(c, comm);
  return ns;
}

export function ticksToSeconds(t: number): number {
  return t / CLOCK_TICKS;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** Runs a helper command (setup, generators) and returns its output; throws on failure. */
export async function run(cmd: string, args: readonly string[], opts: { reject?: boolean; timeoutMs?: number } = {}) {
  return execa(cmd, args, {
    stdin: 'ignore',
    reject: opts.reject ?? true,
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
  });
}

/** A TCP port free on the loopback now (bound and released: a daemon started next takes it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}
