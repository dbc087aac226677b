// The checks a schema cannot make: does the machine match the config? Run before anything
// starts, so a bad config never leaves capture half-configured.
import { execFile } from 'node:child_process';
import { access, mkdtemp, rmdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HelperExit } from '../capture/protocol.js';
import { nativeTool } from '../util/native.js';
import { linkNames } from '../util/sys-class-net.js';
import { readQualeventCredentials } from '../qualevent/credentials.js';
import type { Config } from './config.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { formatSize } from './units.js';

const run = promisify(execFile);

export const listSystemInterfaces = linkNames;

/**
 * The capture helper's verdict on a filter: libpcap's, and whether it fits the helper's control
 * line (the helper alone defines that limit, and names it); undefined when the filter is fine.
 */
export async function filterError(filter: string, snaplen = 262144, linktype = 1): Promise<Omit<ConfigProblem, 'key' | 'value'> | undefined> {
  const verdict = await compileFilter(filter, snaplen, linktype);
  if (!verdict) return undefined;
  if (verdict.tooLong)
    return { message: verdict.text, fix: 'shorten it: a net (net 10.1.0.0/16) or a range (portrange 8000-8100) instead of a list of hosts or ports' };
  return { message: `libpcap rejects it: ${verdict.text}`, fix: 'correct the BPF expression (tcpdump syntax; test it with tcpdump -d "EXPR")' };
}

/** libpcap's words on a filter for this link type and snaplen (through the capture helper, which
 * compiles it as capture and extraction do), or undefined when it compiles. */
export async function compileFilter(filter: string, snaplen = 262144, linktype = 1): Promise<{ text: string; tooLong: boolean } | undefined> {
  if (!filter.trim()) return undefined;
  try {
    await run(nativeTool('qe-capture'), ['--check-filter', filter, '--snaplen', String(snaplen), '--linktype', String(linktype)]);
    return undefined;
  } catch (e) {
    const err = e as { stderr?: string; message: string; code?: unknown };
    return { text: (err.stderr ?? err.message).trim(), tooLong: err.code === HelperExit.tooLong };
  }
}

/** A value quoted in a message: a filter of thousands of characters is named by its start. */
function abbreviate(s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters)`;
}

/** Total bytes the capacity stands for, over the distinct filesystems of the store paths. */
export async function capacityBytes(config: Config): Promise<number> {
  const cap = config.storage.capacity;
  if ('bytes' in cap) return cap.bytes;
  const seen = new Set<string>();
  let total = 0;
  for (const p of config.storage.paths) {
    const fs = await statfs(p);
    const dev = String((await stat(p)).dev);
    if (seen.has(dev)) continue;
    seen.add(dev);
    total += fs.blocks * fs.bsize;
  }
  return Math.floor((total * cap.percent) / 100);
}

export async function checkPath(key: string, path: string): Promise<ConfigProblem | undefined> {
  let st;
  try {
    st = await stat(path);
  } catch {
    return { key, value: path, message: 'does not exist', fix: `create it (mkdir -p ${path}) or correct the path` };
  }
  if (!st.isDirectory()) return { key, value: path, message: 'is not a directory', fix: 'name a directory on the capture disk' };
  // Root passes every permission check, so only a real write proves a path is writable
  // (a read-only mount, a full or failed disk); the probe directory is removed at once.
  try {
    await access(path);
    const probe = await mkdtemp(join(path, '.qe-write-check-'));
    await rmdir(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    return {
      key,
      value: path,
      message: `is not writable (${code})`,
      fix: code === 'EROFS' ? 'remount it read-write or choose another path' : 'give the qe-packets user write access or choose another path',
    };
  }
  return undefined;
}

export interface EnvironmentCheckOptions {
  /** Live capture needs its interfaces; `capture --read` does not. */
  needInterfaces: boolean;
}

export async function checkEnvironment(config: Config, opts: EnvironmentCheckOptions): Promise<void> {
  const problems: ConfigProblem[] = [];
  const fe = await filterError(config.capture.filter, config.capture.snaplen);
  if (fe) problems.push({ key: 'capture.filter', value: abbreviate(config.capture.filter), ...fe });
  // Every element's filters, compiled as the helper will (its own process each: at once).
  const elementFilters = config.elements.flatMap((e, i) => [
    { key: `elements[${i}].filter`, filter: e.filter },
    ...e.indicators.filter((x) => x.filter !== undefined).map((x) => ({ key: `elements[${i}].indicators.${x.name}.filter`, filter: x.filter! })),
  ]);
  const verdicts = await Promise.all(elementFilters.map((f) => filterError(f.filter, config.capture.snaplen)));
  verdicts.forEach((v, i) => {
    if (v) problems.push({ key: elementFilters[i]!.key, value: abbreviate(elementFilters[i]!.filter), ...v });
  });

  if (opts.needInterfaces) {
    const have = await listSystemInterfaces();
    if (config.capture.interfaces.length === 0)
      problems.push({ key: 'capture.interfaces', value: [], message: 'is empty: there is nothing to capture', fix: `list the interfaces to capture, e.g. [${have.find((n) => n !== 'lo') ?? 'eth1'}]` });
    config.capture.interfaces.forEach((itf, i) => {
      if (!have.includes(itf.name))
        problems.push({
          key: `capture.interfaces[${i}]`,
          value: itf.name,
          message: 'no such interface on this machine',
          fix: `use one of: ${have.join(', ') || '(none found)'} (qe-packets interfaces lists them)`,
        });
    });
  }

  const pathProblems = await Promise.all(config.storage.paths.map((p, i) => checkPath(`storage.paths[${i}]`, p)));
  problems.push(...pathProblems.filter((p): p is ConfigProblem => p !== undefined));

  if (!pathProblems.some(Boolean) && 'percent' in config.storage.capacity) {
    const bytes = await capacityBytes(config);
    if (bytes < 2 * config.storage.fileSizeBytes)
      problems.push({
        key: 'storage.capacity',
        value: `${config.storage.capacity.percent}%`,
        message: `is ${formatSize(bytes)} here, fewer than two files of storage.file_size (${formatSize(config.storage.fileSizeBytes)})`,
        fix: 'raise the share, add storage.paths, or lower storage.file_size',
      });
  }
  // Only live capture reports to Qe-Server: an import (--read) does not need the token.
  if (opts.needInterfaces && config.qualevent.url) problems.push(...(await readQualeventCredentials(config.qualevent)).problems);
  if (problems.length) throw new ConfigError(config.source, problems);
}
