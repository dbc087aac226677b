// Starting a qe-capture process. Directly as a child when this process may capture itself (root,
// development, tests); through qe-privsep's spawner when the service runs unprivileged, so that the
// daemon, which parses network requests, never holds capture capabilities.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { constants } from 'node:os';
import { nativeTool } from '../util/native.js';

export interface HelperExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HelperProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly pid: number | undefined;
  /** Still running (or starting). */
  readonly running: boolean;
  kill(signal: NodeJS.Signals): void;
  readonly exited: Promise<HelperExitStatus>;
  /** Why it could not be started at all, if so. */
  readonly startError?: string;
}

function localHelper(args: string[]): HelperProcess {
  const child = spawn(nativeTool('qe-capture'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let startError: string | undefined;
  const exited = new Promise<HelperExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      startError = err.message;
      // spawn failures emit no 'exit'
      if (child.pid === undefined) resolve({ code: 127, signal: null });
    });
  });
  return {
    get startError() {
      return startError;
    },
    stdin: child.stdin!,
    stdout: child.stdout!,
    stderr: child.stderr!,
    get pid() {
      return child.pid;
    },
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    kill: (signal) => void child.kill(signal),
    exited,
  };
}

const signalName = (n: number): NodeJS.Signals | null =>
  (Object.entries(constants.signals).find(([, v]) => v === n)?.[0] as NodeJS.Signals | undefined) ?? null;

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

interface Pending {
  io: PassThrough;
  stdout: PassThrough;
  stderr: PassThrough;
  pid?: number;
  done: boolean;
  resolve: (s: HelperExitStatus) => void;
  /** Until qe-privsep says started or failed. */
  answerTimer?: NodeJS.Timeout;
}

/**
 * How long qe-privsep may take to answer a spawn request (it connects twice and forks: that takes
 * milliseconds). Past this the helper counts as not started, so a spawner that never answers
 * cannot leave a helper starting, and stop() waiting, for ever.
 */
export const SPAWN_ANSWER_TIMEOUT_MS = 5000;

/** Why qe-privsep refused, in words (it answers with an errno). */
function spawnFailure(errno: number): string {
  if (errno === constants.errno.E2BIG)
    return 'the request is longer than qe-privsep accepts (64 KiB, arguments hex-encoded): shorten capture.filter or storage.paths';
  const name = Object.entries(constants.errno).find(([, v]) => v === errno)?.[0];
  return `errno ${errno}${name ? ` ${name}` : ''}`;
}

/** The daemon's side of qe-privsep (see daemon/native/qe-privsep.c for the protocol). */
class PrivsepClient {
  private ctl: Socket;
  private server: Server;
  private readonly socketPath: string;
  private readonly dir?: string;
  private next = 1;
  private pending = new Map<number, Pending>();
  private listening: Promise<void>;

  constructor(fd: number) {
    assertCloseOnExec(fd);
    // systemd's RuntimeDirectory= is private to the service user; elsewhere, a fresh private dir.
    const runtime = process.env.RUNTIME_DIRECTORY?.split(':')[0];
    if (!runtime) this.dir = mkdtempSync(join(tmpdir(), 'qe-privsep-'));
    this.socketPath = join(runtime ?? this.dir!, `helpers-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
    this.ctl = new Socket({ fd, readable: true, writable: true });
    this.ctl.unref();
    createInterface({ input: this.ctl }).on('line', (line) => this.onReply(line));
    this.server = createServer({ allowHalfOpen: true }, (conn) => this.onConnection(conn));
    this.server.unref();
    this.listening = new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => resolve());
    });
    process.once('exit', () => {
      rmSync(this.socketPath, { force: true });
      if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    });
  }

  private onConnection(conn: Socket): void {
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) {
        if (head.length > 64) conn.destroy();
        return;
      }
      conn.off('data', onData);
      const [id, kind] = head.slice(0, nl).split(' ');
      const p = this.pending.get(Number(id));
      if (!p) return void conn.destroy();
      const rest = Buffer.from(head.slice(nl + 1), 'latin1');
      if (kind === 'io') {
        if (rest.length) p.stdout.write(rest);
        conn.pipe(p.stdout);
        p.io.pipe(conn);
      } else if (kind === 'err') {
        if (rest.length) p.stderr.write(rest);
        conn.pipe(p.stderr);
      } else conn.destroy();
    };
    conn.on('data', onData);
    conn.on('error', () => {});
  }

  private onReply(line: string): void {
    const [what, idText, a, b] = line.split(' ');
    const id = Number(idText);
    const p = this.pending.get(id);
    if (!p) {
      // Started after the daemon gave up waiting: nobody reads that helper, so it goes.
      if (what === 'started') this.ctl.write(`kill ${id} ${constants.signals.SIGKILL}\n`);
      return;
    }
    if (what === 'started' || what === 'failed') clearTimeout(p.answerTimer);
    if (what === 'started') p.pid = Number(a);
    else if (what === 'failed') this.notStarted(id, p, `qe-privsep could not start qe-capture: ${spawnFailure(Number(a))}`);
    else if (what === 'exit') {
      p.done = true;
      this.forget(id);
      p.resolve({ code: Number(a) >= 0 ? Number(a) : null, signal: Number(b) ? signalName(Number(b)) : null });
    }
  }

  /** The channel holds the process open only while a helper is starting or running. */
  private forget(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.ctl.unref();
  }

  private notStarted(id: number, p: Pending, why: string): void {
    p.done = true;
    this.forget(id);
    p.stderr.end(`${why}\n`);
    p.stdout.end();
    p.resolve({ code: 127, signal: null });
  }

  spawn(args: string[]): HelperProcess {
    const id = this.next++;
    let resolve!: (s: HelperExitStatus) => void;
    const exited = new Promise<HelperExitStatus>((r) => (resolve = r));
    const p: Pending = { io: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), done: false, resolve };
    this.pending.set(id, p);
    this.ctl.ref(); // an import has nothing else keeping it alive while its helper runs
    void this.listening.then(
      () => {
        this.ctl.write(`spawn ${id} ${hex(this.socketPath)} ${args.map(hex).join(' ')}\n`);
        p.answerTimer = setTimeout(
          () => this.notStarted(id, p, `qe-privsep did not answer the request to start qe-capture within ${SPAWN_ANSWER_TIMEOUT_MS / 1000}s (is the spawner process stopped or gone?)`),
          SPAWN_ANSWER_TIMEOUT_MS,
        );
      },
      (e: Error) => this.notStarted(id, p, `qe-privsep could not start qe-capture: cannot listen on ${this.socketPath}: ${e.message}`),
    );
    const ctl = this.ctl;
    return {
      stdin: p.io,
      stdout: p.stdout,
      stderr: p.stderr,
      get pid() {
        return p.pid;
      },
      get running() {
        return !p.done;
      },
      kill(signal) {
        if (!p.done) ctl.write(`kill ${id} ${constants.signals[signal]}\n`);
      },
      exited,
    };
  }
}

/**
 * The spawner's descriptor must not reach the daemon's other children (they could ask for capture
 * helpers). qe-privsep cannot mark it close-on-exec (the daemon's own exec would close it); Node.js
 * does at start-up, for every descriptor from 0 up to the first closed one past 15, and qe-privsep
 * gives the lowest free number. Checked rather than assumed, as that is Node's behaviour, not an API.
 */
function assertCloseOnExec(fd: number): void {
  const O_CLOEXEC = 0o2000000;
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  if (flags === undefined || (parseInt(flags, 8) & O_CLOEXEC) === 0)
    throw new Error(`QE_PRIVSEP_FD ${fd} is not close-on-exec: every program this daemon runs would inherit the capture spawner; run the daemon with the Node.js it ships with`);
}

let privsep: PrivsepClient | undefined;

export function launchHelper(args: string[]): HelperProcess {
  const fd = process.env.QE_PRIVSEP_FD;
  if (!fd) return localHelper(args);
  privsep ??= new PrivsepClient(Number(fd));
  return privsep.spawn(args);
}

/** Whether helpers are started through qe-privsep (the service's least-privilege mode). */
export const usingPrivsep = () => Boolean(process.env.QE_PRIVSEP_FD);
