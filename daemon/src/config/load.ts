// config.yaml → validated Config. Everything is checked before anything starts: the schema, the
// units, the BPF filter (by libpcap), the interfaces, the store paths and the capacity.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import type { Config } from './config.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { fixAt, knownKeysAt, parseKeyPath } from './keys.js';
import { IDX_BLOCK_SIZE_MAX, IDX_BLOCK_SIZE_MIN } from '../index/format.js';
import { configSchema, type ParsedRawConfig } from './schema.js';
import { DURATION_HELP, PERCENT_RE, SIZE_HELP, parseDuration, parseSize } from './units.js';
import { elementsOf } from './elements.js';

const fixOf = (key: string, otherwise: string) => fixAt(parseKeyPath(key)) ?? otherwise;

function closest(word: string, candidates: string[]): string | undefined {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length]![b.length]!;
  };
  const best = candidates.map((c) => [c, dist(word, c)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= Math.max(2, word.length / 3) ? best[0] : undefined;
}

function valueAt(obj: unknown, path: PropertyKey[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function keyName(path: PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i ? '.' : ''}${String(k)}`)).join('');
}

function schemaProblems(raw: unknown, error: z.ZodError): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const parent = keyName(issue.path);
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const known = knownKeysAt(issue.path);
        const guess = closest(k, known);
        problems.push({
          key: parent ? `${parent}.${k}` : k,
          message: 'unknown key',
          fix: guess ? `did you mean "${guess}"? Known keys here: ${known.join(', ')}` : `known keys here: ${known.join(', ') || '(none)'}`,
        });
      }
      continue;
    }
    const message =
      issue.code === 'invalid_union' && issue.errors.length
        ? (issue.errors.flat().find((e) => e.code !== 'invalid_type')?.message ?? 'has the wrong type')
        : issue.message;
    problems.push({
      key: parent || '(top level)',
      value: valueAt(raw, issue.path),
      message,
      fix: fixAt(issue.path) ?? 'see the configuration reference in README.md',
    });
  }
  return problems;
}

/** Schema validation and unit conversion; no I/O. */
export function normalizeConfig(raw: unknown, source: string): Config {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(source, schemaProblems(raw, parsed.error));
  const c: ParsedRawConfig = parsed.data;
  const problems: ConfigProblem[] = [];
  const sizeOf = (key: string, v: string | number) => {
    const n = parseSize(v);
    if (n === undefined || n === 0) problems.push({ key, value: v, message: 'not a usable size', fix: fixOf(key, `write ${SIZE_HELP}`) });
    return n ?? 0;
  };
  const durationOf = (key: string, v: string | number) => {
    const n = parseDuration(v);
    if (n === undefined) problems.push({ key, value: v, message: 'not a duration', fix: fixOf(key, `write ${DURATION_HELP}`) });
    return n ?? 0;
  };

  const bufferBytes = sizeOf('capture.buffer', c.capture.buffer);
  const interfaces = c.capture.interfaces.map((e, i) =>
    typeof e === 'string'
      ? { name: e, bufferBytes }
      : { name: e.name, bufferBytes: e.buffer === undefined ? bufferBytes : sizeOf(`capture.interfaces[${i}].buffer`, e.buffer) },
  );
  const seen = new Set<string>();
  interfaces.forEach((itf, i) => {
    if (seen.has(itf.name))
      problems.push({ key: `capture.interfaces[${i}]`, value: itf.name, message: 'listed twice', fix: 'list each interface once' });
    seen.add(itf.name);
  });

  let capacity: Config['storage']['capacity'];
  const pct = typeof c.storage.capacity === 'string' ? PERCENT_RE.exec(c.storage.capacity) : null;
  if (pct) {
    const percent = Number(pct[1]);
    if (percent <= 0 || percent > 100)
      problems.push({ key: 'storage.capacity', value: c.storage.capacity, message: 'a share must be above 0% and at most 100%', fix: 'write e.g. 90%' });
    capacity = { percent };
  } else {
    capacity = { bytes: sizeOf('storage.capacity', c.storage.capacity) };
  }
  const fileSizeBytes = sizeOf('storage.file_size', c.storage.file_size);
  if (fileSizeBytes && fileSizeBytes < 64 * 1024)
    problems.push({ key: 'storage.file_size', value: c.storage.file_size, message: 'below 64KiB: the store would drown in tiny files', fix: 'use at least 1MiB; 1GiB suits most appliances' });
  // The helper takes these as whole milliseconds (--file-duration-ms, --flush-ms) and refuses a
  // fraction: say so here, where the value was written.
  const wholeMsOf = (key: string, v: string | number) => {
    const n = durationOf(key, v);
    if (!Number.isInteger(n))
      problems.push({ key, value: v, message: `${n}ms is not a whole number of milliseconds`, fix: `write ${Math.max(1, Math.floor(n))}ms or ${Math.ceil(n)}ms` });
    return n;
  };
  const fileDurationMs = c.storage.file_duration == null ? 0 : wholeMsOf('storage.file_duration', c.storage.file_duration);
  if (fileDurationMs && fileDurationMs < 1000)
    problems.push({ key: 'storage.file_duration', value: c.storage.file_duration, message: 'below one second', fix: 'use 1s or more, or remove the key' });
  const flushIntervalMs = wholeMsOf('storage.flush_interval', c.storage.flush_interval);
  const rescanIntervalMs = durationOf('storage.rescan_interval', c.storage.rescan_interval);
  if (rescanIntervalMs < 500)
    problems.push({ key: 'storage.rescan_interval', value: c.storage.rescan_interval, message: 'below 500ms', fix: 'use 10s (each rescan stats every file of the store)' });
  if (flushIntervalMs < 10 || flushIntervalMs > 60_000)
    problems.push({ key: 'storage.flush_interval', value: c.storage.flush_interval, message: 'must be between 10ms and 60s', fix: 'use 1s (a crash loses at most this much)' });
  if ('bytes' in capacity && capacity.bytes && fileSizeBytes && capacity.bytes < 2 * fileSizeBytes)
    problems.push({
      key: 'storage.capacity',
      value: c.storage.capacity,
      message: `holds fewer than two files of storage.file_size (${String(c.storage.file_size)})`,
      fix: 'raise storage.capacity to at least twice storage.file_size, or lower storage.file_size',
    });
  const indexSeen = new Set<string>();
  c.index.fields.forEach((f, i) => {
    if (indexSeen.has(f)) problems.push({ key: `index.fields[${i}]`, value: f, message: 'listed twice', fix: 'list each field once' });
    indexSeen.add(f);
  });
  const blockSizeBytes = sizeOf('index.block_size', c.index.block_size);
  // The index format's own bounds (index-format.h): a reader refuses any other block size.
  if (blockSizeBytes && (blockSizeBytes & (blockSizeBytes - 1) || blockSizeBytes < IDX_BLOCK_SIZE_MIN || blockSizeBytes > IDX_BLOCK_SIZE_MAX))
    problems.push({ key: 'index.block_size', value: c.index.block_size, message: 'not a power of two from 4KiB to 16MiB', fix: fixOf('index.block_size', 'write e.g. 16KiB') });
  let listen: Config['metrics']['listen'];
  if (c.metrics.listen !== false) {
    listen = hostPort('metrics.listen', c.metrics.listen, '127.0.0.1:9464', problems);
  }
  const api = apiOf(c.api, problems);
  const fraction = (key: string, v: string) => {
    const n = Number(PERCENT_RE.exec(v)![1]) / 100;
    if (n > 1) problems.push({ key, value: v, message: 'above 100%', fix: 'write a share from 0% to 100%' });
    return n;
  };
  const health = {
    dropsWarning: fraction('health.drops_warning', c.health.drops_warning),
    dropsCritical: fraction('health.drops_critical', c.health.drops_critical),
    windowMs: durationOf('health.window', c.health.window),
    retentionTargetMs: c.health.retention_target == null ? 0 : durationOf('health.retention_target', c.health.retention_target),
    storeFullWarning: fraction('health.store_full_warning', c.health.store_full_warning),
  };
  if (health.dropsCritical < health.dropsWarning)
    problems.push({ key: 'health.drops_critical', value: c.health.drops_critical, message: `below health.drops_warning (${c.health.drops_warning})`, fix: 'make drops_critical at least drops_warning' });
  if (health.windowMs < 5000)
    problems.push({ key: 'health.window', value: c.health.window, message: 'below 5s: too few once-a-second samples', fix: 'use 60s' });
  const qualevent = qualeventOf(c.qualevent, sizeOf, durationOf, problems);
  const elements = elementsOf(c.elements, health.windowMs, problems);
  if (problems.length) throw new ConfigError(source, problems);

  return {
    source,
    capture: { interfaces, filter: c.capture.filter, snaplen: c.capture.snaplen, bufferBytes, promiscuous: c.capture.promiscuous },
    storage: {
      paths: c.storage.paths,
      capacity,
      mode: c.storage.mode,
      fileSizeBytes,
      fileDurationMs,
      flushIntervalMs,
      rescanIntervalMs,
      directIo: c.storage.direct_io,
      fsync: c.storage.fsync,
    },
    index: { fields: c.index.fields, blockSizeBytes },
    flows: { enabled: c.flows.enabled },
    metrics: listen ? { listen } : {},
    api,
    control: { socket: c.control.socket },
    health,
    qualevent,
    elements,
  };
}

function qualeventOf(
  q: ParsedRawConfig['qualevent'],
  sizeOf: (key: string, v: string | number) => number,
  durationOf: (key: string, v: string | number) => number,
  problems: ConfigProblem[],
): Config['qualevent'] {
  const snapshotIntervalMs = durationOf('qualevent.snapshot_interval', q.snapshot_interval);
  if (snapshotIntervalMs < 1000)
    problems.push({ key: 'qualevent.snapshot_interval', value: q.snapshot_interval, message: 'below 1s', fix: 'use 60s (each snapshot is one event per element)' });
  const outboxSizeBytes = sizeOf('qualevent.outbox_size', q.outbox_size);
  if (outboxSizeBytes && outboxSizeBytes < 64 * 1024)
    problems.push({ key: 'qualevent.outbox_size', value: q.outbox_size, message: 'below 64KiB: a few snapshots would fill it', fix: 'use 100MiB, or at least 1MiB' });
  if (q.url && !isQualeventUrl(q.url))
    problems.push({ key: 'qualevent.url', value: q.url, message: 'not an http(s) URL without credentials', fix: 'write e.g. https://qe-server.example/api/events, with the token in qualevent.token_file' });
  return {
    ...(q.url ? { url: q.url } : {}),
    ...(q.token_file ? { tokenFile: q.token_file } : {}),
    ...(q.ca_file ? { caFile: q.ca_file } : {}),
    applianceId: q.appliance_id ?? hostname(),
    snapshotIntervalMs,
    outboxSizeBytes,
  };
}

/** An http(s) URL with a host and no user or password: credentials in a URL would end up in logs
 *  and status, the token belongs in token_file. Also checks the appliance's qualevent_url. */
export function isQualeventUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === 'https:' || u.protocol === 'http:') && !!u.hostname && !u.username && !u.password && /^https?:\/\//i.test(url);
  } catch {
    return false;
  }
}

/** What an operator should know of a valid config, said at check-config and at start. */
export function configWarnings(config: Config): string[] {
  const out: string[] = [];
  if (config.qualevent.url?.toLowerCase().startsWith('http://'))
    out.push(`qualevent.url ${config.qualevent.url}: plain HTTP, the token and the element states cross the network in the clear; use https:// outside a lab`);
  return out;
}

/** host:port as written (IPv6 in brackets) → host and port; a port above 65535 is a problem. */
function hostPort(key: string, text: string, example: string, problems: ConfigProblem[]): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text)!;
  const port = Number(m[2]);
  // Port 0 takes any free port (the daemon logs which): for tests and throw-away runs.
  if (port > 65535) problems.push({ key, value: text, message: 'port out of range', fix: `use a port from 1 to 65535, e.g. ${example}` });
  return { host: m[1]!, port };
}

/** The loopback interface's addresses: the only place the API may answer without TLS. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function apiOf(a: ParsedRawConfig['api'], problems: ConfigProblem[]): Config['api'] {
  const tls = { ...(a.tls.cert ? { cert: a.tls.cert } : {}), ...(a.tls.key ? { key: a.tls.key } : {}) };
  if (!!tls.cert !== !!tls.key) {
    const [given, missing] = tls.cert ? ['api.tls.cert', 'api.tls.key'] : ['api.tls.key', 'api.tls.cert'];
    problems.push({ key: missing, message: `missing: ${given} is set, and a certificate needs its key (and a key its certificate)`, fix: `set ${missing} too, or remove ${given}` });
  }
  if (a.listen === false) return { tls, maxExtractions: a.max_extractions };
  const listen = hostPort('api.listen', a.listen, '127.0.0.1:8443', problems);
  // Tokens and captured packets cross the network in the clear otherwise.
  if (!isLoopback(listen.host) && !(tls.cert && tls.key))
    problems.push({
      key: 'api.listen',
      value: a.listen,
      message: 'off the loopback interface the API serves HTTPS only, and api.tls.cert and api.tls.key are not set',
      fix: 'set api.tls.cert and api.tls.key (PEM files; an appliance makes a self-signed pair at first boot), or listen on 127.0.0.1',
    });
  return { listen, tls, maxExtractions: a.max_extractions };
}

/** YAML text → Config (schema and units only). Parse errors carry line and column. */
export function parseConfigText(text: string, source: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `line ${pos.line}, column ${pos.col}` : 'somewhere';
        return {
          key: `(YAML ${where})`,
          message: `does not parse: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
          fix: 'correct the YAML syntax at that line (indent with spaces, quote values that contain ": " or start with special characters)',
        };
      }),
    );
  }
  return normalizeConfig(doc.toJS(), source);
}

export async function loadConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(path, [
      {
        key: '(file)',
        value: path,
        message: err.code === 'ENOENT' ? 'no such file' : `cannot be read (${err.code ?? err.message})`,
        fix: err.code === 'ENOENT' ? 'create it (see the example in README.md) or name another with --config FILE' : 'check its permissions',
      },
    ]);
  }
  return parseConfigText(text, path);
}
