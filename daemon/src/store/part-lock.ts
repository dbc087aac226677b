// The lock a live writer holds on its `.pcap.part` file, taken from Node.
//
// qe-capture (writer.c) holds flock(LOCK_EX) on each part file from its creation until the sync
// thread has renamed it. A start-up repair (a daemon starting, a second import) must take the same
// lock, without waiting, and keep it while it cuts, renames or removes the file: a file whose lock
// is held is live and left alone, and a writer that opens a name a repair holds moves on to the
// next name. Node has no flock binding, so util-linux's flock(1), an Essential package on Debian,
// takes it on our descriptor: the child gets the descriptor as fd 3 and `flock --nonblock 3`
// locks the open file description the two share. The lock outlives the child (it belongs to the
// description, which our descriptor keeps open) and goes when we close it. A check that only looked
// (/proc/locks) would leave a window between looking and acting in which a writer could start.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';

const HELD = 75; // flock's exit code when the lock is taken, chosen so that errors differ

export type PartLock =
  | { state: 'locked'; release(): void }
  /** Another process (a running capture or import) holds it: the file is live. */
  | { state: 'held' }
  /** No longer there: its writer renamed it (closed) since the directory was read. */
  | { state: 'gone' }
  /** The lock could not be tried (the reason says why): the file must be left alone. */
  | { state: 'unknown'; reason: string };

export function lockPart(path: string): PartLock {
  let fd: number;
  try {
    // Never follows a symlink nor waits for a FIFO's writer: only a regular file is locked.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'gone' };
    if (code === 'ELOOP') return { state: 'unknown', reason: 'it is a symbolic link, not a file a writer left' };
    return { state: 'unknown', reason: `cannot open it to check for a writer (${code ?? (e as Error).message})` };
  }
  const r = tryFlock(fd);
  if (r === 'locked') return { state: 'locked', release: () => closeSync(fd) };
  closeSync(fd);
  if (r === 'held') return { state: 'held' };
  return { state: 'unknown', reason: r.reason };
}

/** flock(LOCK_EX | LOCK_NB) on our descriptor, through flock(1) (see the top of this file). */
export function tryFlock(fd: number): 'locked' | 'held' | { reason: string } {
  const r = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(HELD), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    encoding: 'utf8',
  });
  if (r.status === 0) return 'locked';
  if (r.status === HELD) return 'held';
  const why = r.error ? r.error.message : (r.stderr.trim() || `exit ${r.status ?? r.signal}`);
  return { reason: `cannot check whether another process is writing it: flock(1) from util-linux failed (${why})` };
}
