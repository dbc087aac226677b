// What each endpoint does, through the same functions as the CLI: the command's argument parser
// (query.ts turns parameters into its flags), extract/prepare.ts and the runner for extraction and
// its plan, commands/flow-query.ts for flows and stats, the control socket's report for status.
// Every path of types.ts has its handler here (the Record's type makes a missing one a build error).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UsageError, parseExtractArgs, type ExtractRequest } from '../commands/extract-args.js';
import { parseFlowsArgs, parseStatsArgs } from '../commands/flows-args.js';
import { runQuery } from '../commands/flow-query.js';
import { statsJson, statsOf } from '../commands/stats.js';
import type { Config } from '../config/config.js';
import type { ReloadOutcome } from '../daemon/daemon.js';
import { ExitCode } from '../extract/exit-codes.js';
import { explain } from '../extract/explain.js';
import { Refusal, checkInterfaces, prepareExtraction, readCatalog, refuseBadFilter } from '../extract/prepare.js';
import { flowJson } from '../flows/render.js';
import { totalsOf } from '../flows/stats.js';
import type { StatusReport } from '../health/figures.js';
import { selectFiles } from '../store/select-files.js';
import { formatIsoNs, nowNs } from '../time/format-time.js';
import { toJson } from '../util/json.js';
import { log } from '../util/log.js';
import type { AuditLog } from './audit.js';
import { ExtractionSlots, streamExtraction } from './extraction.js';
import type { History } from './history.js';
import { openApiDocument } from './openapi.js';
import { asFlags } from './query.js';
import type { TokenRecord } from './tokens.js';
import type { ApiErrorCode, ApiPath, AuditEntry, FilesResponse, QueryParam, ReloadResponse, StatsResponse } from './types.js';

/** What the routes need of the daemon. */
export interface ApiContext {
  /** The configuration in force (the last one a reload applied). */
  config(): Config;
  /** The file the daemon was started with: flows and stats read the store from it, as the commands do. */
  configPath: string;
  report(): StatusReport;
  reload(): Promise<ReloadOutcome>;
  history: History;
  audit: AuditLog;
  slots: ExtractionSlots;
  version: string;
  tlsFingerprint: string | null;
}

export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  params: Map<QueryParam, string[]>;
  /** Absent on the routes that need no token. */
  token?: TokenRecord;
  address: string;
  api: ApiContext;
}

/** An answer refused with an HTTP status and the CLI's words. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${toJson(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers }).end(text);
}

/** The CLI's refusals and usage errors as HTTP: bad input 400, an unreadable store 500; anything else as it is. */
function httpErrorOf(e: unknown): unknown {
  // A usage error's text ends with the command's usage: the first part is what was wrong.
  if (e instanceof UsageError) return new HttpError(400, 'bad_request', e.message.split('\n\n')[0]!);
  if (e instanceof Refusal) {
    if (e.exitCode === ExitCode.usage) return new HttpError(400, 'bad_request', e.message);
    return new HttpError(500, e.exitCode === ExitCode.input ? 'unreadable_input' : 'internal', e.message);
  }
  return e;
}

function asHttp(e: unknown): never {
  throw httpErrorOf(e);
}

const storePaths = (c: Call) => c.api.config().storage.paths;

/** extract's flags (zone UTC); `extra` adds -w - or --explain. */
function extractRequest(c: Call, extra: string[]): ExtractRequest {
  try {
    return parseExtractArgs([...asFlags(c.params), ...extra], nowNs(), 'utc');
  } catch (e) {
    return asHttp(e);
  }
}

function auditQuery(r: { fromNs: bigint; toNs: bigint; filter?: string; ifaces: string[] }): AuditEntry['query'] {
  return { from: formatIsoNs(r.fromNs), to: formatIsoNs(r.toNs), filter: r.filter ?? null, iface: r.ifaces };
}

type Handler = (c: Call) => Promise<void>;

export const handlers: Record<ApiPath, Handler> = {
  '/info': async (c) => sendJson(c.res, 200, { version: c.api.version, tls_fingerprint: c.api.tlsFingerprint }),

  '/whoami': async (c) => sendJson(c.res, 200, { name: c.token!.name, role: c.token!.role }),

  '/status': async (c) => sendJson(c.res, 200, c.api.report()),

  '/history': async (c) => sendJson(c.res, 200, c.api.history.snapshot()),

  '/elements': async (c) => sendJson(c.res, 200, { elements: c.api.report().figures.elements ?? [] }),

  '/files': async (c) => {
    // The range is optional here: from the beginning of the store to now.
    const q = extractRequest(c, ['--explain', ...(c.params.has('from') ? [] : ['--from=0'])]);
    const catalog = await readCatalog(storePaths(c), (m) => log('warn', `files (API): ${m}`));
    try {
      checkInterfaces(catalog.entries, q.ifaces);
    } catch (e) {
      asHttp(e);
    }
    const files = selectFiles(catalog.entries, q)
      .streams.flatMap((s) => s.files)
      .sort((a, b) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : a.name < b.name ? -1 : 1));
    const body: FilesResponse = {
      from: formatIsoNs(q.fromNs),
      to: formatIsoNs(q.toNs),
      files: files.map((f) => ({ path: f.path, iface: f.iface, first: formatIsoNs(f.firstNs), last: formatIsoNs(f.lastNs), packets: f.packets, bytes: f.bytes, size: f.size, partial: f.partial, linktype: f.linktype })),
      total: { files: files.length, packets: files.reduce((n, f) => n + f.packets, 0), bytes: files.reduce((n, f) => n + f.bytes, 0), size: files.reduce((n, f) => n + f.size, 0) },
    };
    sendJson(c.res, 200, body);
  },

  '/explain': async (c) => {
    const q = extractRequest(c, ['--explain']);
    const { reads, chosen } = await prepareExtraction(storePaths(c), q, (m) => log('info', `explain (API): ${m}`)).catch(asHttp);
    await refuseBadFilter(q, chosen).catch(asHttp);
    sendJson(c.res, 200, explain(reads, q.filter, q.fromNs, q.toNs));
  },

  '/stats': async (c) => {
    let req;
    try {
      req = parseStatsArgs([...asFlags(c.params), `--config=${c.api.configPath}`], nowNs(), 'utc');
    } catch (e) {
      asHttp(e);
    }
    const { result } = await runQuery(req, (m) => log('info', `stats (API): ${m}`), req.intervalNs).catch(asHttp);
    // An empty range is an answer here (zero totals), where the command says so and exits 3.
    const s = statsOf(req, result);
    const body: StatsResponse = statsJson(req, s.total, s.rows, s.series);
    sendJson(c.res, 200, body);
  },

  '/flows': async (c) => {
    let req;
    try {
      req = parseFlowsArgs([...asFlags(c.params), '--json', `--config=${c.api.configPath}`], nowNs(), 'utc');
    } catch (e) {
      asHttp(e);
    }
    const entry = { time: new Date().toISOString(), token: c.token!.name, role: c.token!.role, address: c.address, action: 'flows' as const, query: auditQuery(req) };
    await c.api.audit.ready().catch((e: Error) => {
      throw new HttpError(500, 'internal', `the audit log cannot be written (${e.message}): flow queries are refused until it can`);
    });
    let answer;
    try {
      answer = await runQuery(req, (m) => log('info', `flows (API): ${m}`));
    } catch (e) {
      const status = e instanceof Refusal && e.exitCode === ExitCode.usage ? 400 : 500;
      await c.api.audit.write({ ...entry, packets: 0, bytes: 0, status, outcome: status < 500 ? 'refused' : 'failed', error: (e as Error).message });
      asHttp(e);
    }
    const flows = answer.result.merger.sorted();
    c.res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
    let bytes = 0;
    let chunk = '';
    let gone = false;
    c.res.on('close', () => (gone = !c.res.writableFinished));
    for (const f of flows) {
      chunk += `${JSON.stringify(flowJson(f))}\n`;
      if (chunk.length > 64 * 1024) {
        bytes += Buffer.byteLength(chunk);
        if (!c.res.write(chunk)) await new Promise<void>((r) => (c.res.destroyed ? r() : c.res.once('drain', r).once('close', r)));
        chunk = '';
        if (gone || c.res.destroyed) break;
      }
    }
    if (!gone && !c.res.destroyed) {
      bytes += Buffer.byteLength(chunk);
      c.res.end(chunk);
    }
    const total = totalsOf(flows);
    await c.api.audit.write({ ...entry, packets: total.packets, bytes, status: 200, outcome: gone || c.res.destroyed ? 'cancelled' : 'complete' });
  },

  '/extract': async (c) => {
    const q = extractRequest(c, ['-w', '-']);
    const { slots } = c.api;
    const slot = slots.tryTake();
    if (!slot)
      throw new HttpError(429, 'too_many_requests', `${slots.running} extractions are running, api.max_extractions allows ${c.api.config().api.maxExtractions}: try again when one has finished`, { 'retry-after': '10' });
    try {
      await c.api.audit.ready().catch((e: Error) => {
        throw new HttpError(500, 'internal', `the audit log cannot be written (${e.message}): extractions are refused until it can`);
      });
      const entry = { time: new Date().toISOString(), token: c.token!.name, role: c.token!.role, address: c.address, action: 'extract' as const, query: auditQuery(q) };
      let r;
      try {
        r = await streamExtraction(c.req, c.res, storePaths(c), q, slots, slot);
      } catch (e) {
        const http = httpErrorOf(e);
        const status = http instanceof HttpError ? http.status : 500;
        await c.api.audit.write({ ...entry, packets: 0, bytes: 0, status, outcome: status < 500 ? 'refused' : 'failed', error: (e as Error).message });
        throw http;
      }
      await c.api.audit.write({ ...entry, packets: r.packets, bytes: r.bytes, status: r.status, outcome: r.outcome, ...(r.error ? { error: r.error } : {}) });
      if (r.refusal) throw new HttpError(r.refusal.status, r.refusal.code, r.refusal.message);
    } finally {
      slot.release();
    }
  },

  '/audit': async (c) => {
    const text = c.params.get('limit')?.[0];
    const limit = text === undefined ? 50 : Number(text);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new HttpError(400, 'bad_request', `limit ${text}: not a whole number from 1 to 1000`);
    sendJson(c.res, 200, { entries: await c.api.audit.recent(limit) });
  },

  '/openapi.json': async (c) => sendJson(c.res, 200, openApiDocument(c.api.version)),

  '/reload': async (c) => {
    const r = await c.api.reload();
    if (!r.applied) throw new HttpError(400, 'bad_request', `reload refused, capture goes on with the previous configuration: ${r.error}`);
    const body: ReloadResponse = { applied: true, restart_needed: r.restartNeeded };
    sendJson(c.res, 200, body);
  },
};
