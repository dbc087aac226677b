// Small process helpers shared by the image build. Every step is logged with its duration so the
// image timings in README.md and docs/BENCHMARKS.md can be re-measured from a build log.
//
// The stages are shell-like (losetup, mount, mkfs, debootstrap, chroot apt-get), so they are written
// with zx's `$` templates, each interpolated value quoted as one argument. The two long-running
// processes the build supervises itself (packer, QEMU: output parsed as it comes, killed on a
// timeout) keep execa, which hands over the child and its streams.
import { $, type Options, type ProcessOutput, type ProcessPromise } from 'zx';

export function log(msg: string): void {
  process.stderr.write(`[image ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

type Sh = (pieces: TemplateStringsArray, ...args: unknown[]) => Promise<string>;

/**
 * `` await sh`mkfs.ext4 -q ${dev}` `` runs a command and resolves to its standard output, trimmed.
 * Output streams to stderr only with QE_IMAGE_VERBOSE=1 (debootstrap and apt are very chatty); on
 * failure the error carries the command, its exit code and the tail of its output. `sh.with(opts)`
 * is the same with zx options (env replaces the environment; input feeds stdin).
 */
export const sh: Sh & { with(opts: Partial<Options>): Sh } = Object.assign(
  (pieces: TemplateStringsArray, ...args: unknown[]) => start({}, pieces, args),
  { with: (opts: Partial<Options>): Sh => (pieces, ...args) => start(opts, pieces, args) },
);

function start(opts: Partial<Options>, pieces: TemplateStringsArray, args: unknown[]): Promise<string> {
  const verbose = process.env.QE_IMAGE_VERBOSE === '1';
  const child = $({
    quiet: !verbose,
    verbose,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...opts,
  })(pieces, ...args);
  live.add(child);
  return child.then(
    (out) => out.stdout.trim(),
    (e: unknown) => {
      const out = e as ProcessOutput;
      const tail = (out.stderr || out.stdout || '').split('\n').slice(-25).join('\n');
      const cmd = String.raw({ raw: pieces }, ...args.map((a) => (Array.isArray(a) ? a.join(' ') : String(a))));
      throw new Error(`${cmd}: ${out.exitCode === null ? `killed by ${out.signal}` : `exit code ${out.exitCode}`}\n${tail}`);
    },
  ).finally(() => live.delete(child));
}

const live = new Set<ProcessPromise>();

/** Stops every command still running (apt in the chroot holds the mounts a cleanup must undo). */
export function killRunning(): void {
  for (const c of live) void c.kill('SIGTERM').catch(() => undefined);
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
