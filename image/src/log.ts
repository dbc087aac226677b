// Small process helpers shared by the image build. Every step is logged with its duration so the
// image timings in README.md and docs/BENCHMARKS.md can be re-measured from a build log.
import { execa, type Options } from 'execa';

export function log(msg: string): void {
  process.stderr.write(`[image ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Runs a command, streaming its output to stderr only when `verbose` is set (debootstrap and apt
 * are very chatty); on failure the error carries the command and its captured output. */
export async function run(file: string, args: readonly string[], opts: Options = {}): Promise<string> {
  const verbose = process.env.QE_IMAGE_VERBOSE === '1';
  const child = execa(file, args, {
    ...(opts.input === undefined ? { stdin: 'ignore' } : {}),
    ...(verbose ? { stdout: ['pipe', 'inherit'], stderr: ['pipe', 'inherit'] } : {}),
    ...opts,
  } as Options);
  live.add(child);
  try {
    const r = await child;
    return String(r.stdout ?? '').trim();
  } catch (e) {
    const err = e as { stderr?: unknown; stdout?: unknown; shortMessage?: string; message?: string };
    const tail = (String(err.stderr ?? '') || String(err.stdout ?? '')).split('\n').slice(-25).join('\n');
    throw new Error(`${err.shortMessage ?? `${file} ${args.join(' ')}: ${err.message ?? String(e)}`}\n${tail}`);
  } finally {
    live.delete(child);
  }
}

const live = new Set<{ kill(signal?: NodeJS.Signals): boolean }>();

/** Stops every command still running (apt in the chroot holds the mounts a cleanup must undo). */
export function killRunning(): void {
  for (const c of live) c.kill('SIGTERM');
}

export async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  log(`${label} ...`);
  const r = await fn();
  log(`${label}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return r;
}

/** Cleanups registered while devices are attached and filesystems mounted; run in reverse order
 * on success, failure or Ctrl-C so a failed build never leaves a loop device or mount behind. */
export class Cleanup {
  private readonly steps: { label: string; fn: () => Promise<void> }[] = [];
  push(label: string, fn: () => Promise<void>): void {
    this.steps.push({ label, fn });
  }
  private running: Promise<void> | undefined;
  /** Safe to call twice at once (a signal handler and a failing step): both wait for one pass. */
  runAll(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
  private async pass(): Promise<void> {
    while (this.steps.length) {
      const s = this.steps.pop()!;
      try {
        await s.fn();
      } catch (e) {
        log(`cleanup "${s.label}" failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }
}
