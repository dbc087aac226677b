// The pipeline's stages: each has inputs (files, folders and values) and outputs. A rerun skips a
// stage whose inputs hash as last time and whose outputs are all there, so a build that failed in
// stage 3 resumes there, and a daemon-only change rebuilds from the update package on. Every stage
// is timed; the timings go to build/image/stages.json (npm run bench:image reads them).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { log } from './log.js';

export interface StageRecord {
  name: string;
  hash: string;
  outputs: string[];
  seconds: number;
  skipped: boolean;
}

async function hashPath(h: ReturnType<typeof createHash>, path: string, root: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st) {
    h.update(`missing ${relative(root, path)}\n`);
    return;
  }
  if (st.isDirectory()) {
    for (const e of (await readdir(path)).sort()) await hashPath(h, join(path, e), root);
    return;
  }
  h.update(`file ${relative(root, path)} ${st.mode & 0o111 ? 'x' : '-'}\n`);
  h.update(await readFile(path));
}

/** A hash of the files and folders (by content, not by time) and of the values. */
export async function hashInputs(root: string, paths: readonly string[], values: unknown = null): Promise<string> {
  const h = createHash('sha256');
  for (const p of paths) await hashPath(h, p, root);
  h.update(JSON.stringify(values));
  return h.digest('hex').slice(0, 16);
}

export class Stages {
  readonly records: StageRecord[] = [];
  constructor(
    private readonly root: string,
    private readonly dir: string,
  ) {}

  private stampOf(name: string): string {
    return join(this.dir, 'stamps', `${name.replace(/\W+/g, '-')}.json`);
  }

  /**
   * Runs fn unless the last run of this stage had the same inputs and left every output; fn returns
   * the outputs. A failure names the stage and where its log is.
   */
  async run(name: string, inputs: { paths: readonly string[]; values?: unknown }, fn: () => Promise<string[]>): Promise<string[]> {
    const hash = await hashInputs(this.root, inputs.paths, inputs.values ?? null);
    const stampPath = this.stampOf(name);
    const last = existsSync(stampPath) ? (JSON.parse(await readFile(stampPath, 'utf8')) as StageRecord) : undefined;
    if (last?.hash === hash && last.outputs.every((o) => existsSync(o))) {
      log(`stage ${name}: inputs unchanged since the last build (${hash}), outputs present: skipped`);
      this.records.push({ ...last, seconds: 0, skipped: true });
      return last.outputs;
    }
    const logFile = join(this.dir, 'logs', `${name.replace(/\W+/g, '-')}.log`);
    await mkdir(join(this.dir, 'logs'), { recursive: true });
    log(`stage ${name} ...`);
    const t0 = Date.now();
    let outputs: string[];
    try {
      outputs = await fn();
    } catch (e) {
      await appendFile(logFile, `${new Date().toISOString()} stage ${name} failed:\n${(e as Error).stack ?? String(e)}\n`);
      throw new Error(`stage ${name} failed (details in ${logFile}; rerun to resume from this stage):\n${(e as Error).message}`);
    }
    const rec: StageRecord = { name, hash, outputs, seconds: (Date.now() - t0) / 1000, skipped: false };
    await mkdir(join(this.dir, 'stamps'), { recursive: true });
    await writeFile(stampPath, `${JSON.stringify(rec, null, 2)}\n`);
    log(`stage ${name}: done in ${rec.seconds.toFixed(1)} s`);
    this.records.push(rec);
    return outputs;
  }

  /** A stage that always runs (it keeps its own cache, or checking would cost what doing costs): timed and reported only. */
  async timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
    log(`stage ${name} ...`);
    const t0 = Date.now();
    const r = await fn().catch((e: Error) => {
      throw new Error(`stage ${name} failed:\n${e.message}`);
    });
    const seconds = (Date.now() - t0) / 1000;
    log(`stage ${name}: done in ${seconds.toFixed(1)} s`);
    this.records.push({ name, hash: '', outputs: [], seconds, skipped: false });
    return r;
  }

  async writeReport(path: string): Promise<void> {
    await writeFile(path, `${JSON.stringify({ stages: this.records }, null, 2)}\n`);
  }
}
