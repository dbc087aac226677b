// The API's contract: every endpoint's path, method, least role, query parameters and response
// type, written once. The server's routes are looked up here, the OpenAPI document is checked
// against this table (test/api-openapi.test.ts: every path here is in it and nothing else), and the
// console (console/) imports these types. Responses reuse the CLI's JSON shapes where the CLI has
// one (status --json, extract --explain --json, stats --json, flows --json): the API and the CLI
// answer through the same functions.
import type { Explained } from '../extract/explain.js';
import type { FlowJson } from '../flows/render.js';
import type { StatsBy } from '../flows/stats.js';
import type { ElementState } from '../elements/types.js';
import type { StatusReport } from '../health/figures.js';

export const API_PREFIX = '/api/v1';

/** viewer: status, files, stats, history; analyst: also flows, extraction and the audit log; admin: also reload. */
export const ROLES = ['viewer', 'analyst', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** JSON as it travels: bigint nanoseconds become decimal strings (daemon/src/util/json.ts). */
export type Wire<T> = T extends bigint
  ? string
  : T extends readonly (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

/** Every error, whatever the status: `message` is the CLI's text for the same mistake. */
export interface ApiError {
  error: { code: ApiErrorCode; message: string };
}

export type ApiErrorCode =
  | 'bad_request' // 400: a bad time, range, filter, interface or parameter
  | 'unauthorized' // 401: no token, or not a valid one
  | 'forbidden' // 403: the token's role may not do this
  | 'not_found' // 404
  | 'method_not_allowed' // 405
  | 'uri_too_long' // 414: a query longer than the limit
  | 'too_many_requests' // 429: too many failed logins from this address, or api.max_extractions running
  | 'header_too_large' // 431
  | 'unreadable_input' // 500: the store could not be read (the CLI's exit 4)
  | 'internal'; // 500

/** Common query parameters of the range endpoints (the CLI's flags without the dashes). */
export interface RangeQuery {
  /** ISO 8601 (without a zone: UTC), epoch seconds, `now`, `15m ago`. */
  from: string;
  /** Default: now. */
  to?: string;
  /** libpcap filter, meant as it was live (see README "Filters and VLAN tags"). */
  filter?: string;
  /** Comma-separated interface names (or the parameter repeated). */
  iface?: string;
}

export interface StatsQuery extends RangeQuery {
  by?: StatsBy;
  top?: string;
  /** A duration: 1s, 5m, 1h. */
  interval?: string;
}

/** GET /status: `qe-packets status --json`. */
export type StatusResponse = Wire<StatusReport>;

/** GET /info (no token needed): what a login page shows before a token is given. */
export interface InfoResponse {
  version: string;
  /** SHA-256 of the server certificate (DER), as `AB:CD:…`; null over plain HTTP. */
  tls_fingerprint: string | null;
}

/** GET /whoami: the token a request carried. */
export interface WhoamiResponse {
  name: string;
  role: Role;
}

/** One capture file of GET /files. */
export interface FileEntry {
  path: string;
  iface: string;
  /** First and last packet, ISO 8601 UTC with nine digits. */
  first: string;
  last: string;
  packets: number;
  /** Captured bytes (the records' caplen); `size` is the size on disk. */
  bytes: number;
  size: number;
  /** Still being written. */
  partial: boolean;
  linktype: number;
}

/** GET /files?from&to&iface: the store's files whose time span meets the range, oldest first. */
export interface FilesResponse {
  from: string;
  to: string;
  files: FileEntry[];
  total: { files: number; packets: number; bytes: number; size: number };
}

/** GET /explain?from&to&filter&iface: `qe-packets extract --explain --json`. */
export type ExplainResponse = Explained;

/** GET /stats?…: `qe-packets stats --json`. */
export interface StatsResponse {
  from: string;
  to: string;
  by: StatsBy;
  total: { packets: number; bytes: number; flows: number };
  rows: { key: string | number; packets: number; bytes: number; flows: number }[];
  series?: { start: string; packets: number; bytes: number }[];
}

/** GET /flows?…: one of these per line (application/x-ndjson), `qe-packets flows --json`. */
export type FlowLine = FlowJson;

/** One interface in one sample of GET /history. */
export interface HistoryInterface {
  name: string;
  packets_per_s: number;
  bits_per_s: number;
  /** Packets lost (kernel ring, interface, writer, store full) per second over the sample. */
  drops_per_s: number;
}

export interface HistorySample {
  /** ms since the epoch. */
  t: number;
  interfaces: HistoryInterface[];
  store: { used_bytes: number; capacity_bytes: number };
}

/** GET /history: the last hour, one sample every `interval_s`, oldest first (kept in the daemon's memory). */
export interface HistoryResponse {
  interval_s: number;
  samples: HistorySample[];
}

/** One line of the audit log (/var/log/qe-packets/audit.log) and of GET /audit. */
export interface AuditEntry {
  /** ISO 8601 UTC. */
  time: string;
  /** The token's name. */
  token: string;
  role: Role;
  /** The client's address. */
  address: string;
  action: 'extract' | 'flows';
  query: { from: string; to: string; filter: string | null; iface: string[] };
  /** What reached the client's connection. */
  packets: number;
  bytes: number;
  /** HTTP status answered. */
  status: number;
  /** complete, cancelled (the client went away), refused (a 4xx) or failed. */
  outcome: 'complete' | 'cancelled' | 'refused' | 'failed';
  error?: string;
}

/** GET /audit?limit: newest first. */
export interface AuditResponse {
  entries: AuditEntry[];
}

/** GET /elements: every configured element's state, in config order (empty when none is). */
export interface ElementsResponse {
  elements: ElementState[];
}

/** POST /reload: applied (a refused configuration is a 400 error with the reason; capture goes on with the old one). */
export interface ReloadResponse {
  applied: true;
  /** Keys that take effect at the next restart. */
  restart_needed: string[];
}

export type QueryParam = 'from' | 'to' | 'filter' | 'iface' | 'by' | 'top' | 'interval' | 'limit';

export interface RouteSpec {
  method: 'GET' | 'POST';
  /** Least role allowed; null: no token needed. */
  role: Role | null;
  query: readonly QueryParam[];
  /** Query parameters that must be there. */
  required?: readonly QueryParam[];
  produces: 'application/json' | 'application/x-ndjson' | 'application/vnd.tcpdump.pcap';
  summary: string;
}

const RANGE = ['from', 'to', 'filter', 'iface'] as const;

/** Every endpoint, by path under API_PREFIX. */
export const ROUTES = {
  '/info': { method: 'GET', role: null, query: [], produces: 'application/json', summary: 'version and the TLS certificate fingerprint (no token needed)' },
  '/whoami': { method: 'GET', role: 'viewer', query: [], produces: 'application/json', summary: "the token's name and role" },
  '/status': { method: 'GET', role: 'viewer', query: [], produces: 'application/json', summary: 'health with its reasons and the figures (qe-packets status --json)' },
  '/files': { method: 'GET', role: 'viewer', query: ['from', 'to', 'iface'], produces: 'application/json', summary: 'capture files of a time range' },
  '/stats': { method: 'GET', role: 'viewer', query: [...RANGE, 'by', 'top', 'interval'], required: ['from'], produces: 'application/json', summary: 'top-N tables and a time series (qe-packets stats --json)' },
  '/elements': { method: 'GET', role: 'viewer', query: [], produces: 'application/json', summary: "the configured elements' states with their reasons and figures" },
  '/history': { method: 'GET', role: 'viewer', query: [], produces: 'application/json', summary: 'the last hour of per-interface rates, drops and store use, every 10 s' },
  '/explain': { method: 'GET', role: 'viewer', query: RANGE, required: ['from'], produces: 'application/json', summary: 'the extraction plan and estimate (qe-packets extract --explain --json)' },
  '/flows': { method: 'GET', role: 'analyst', query: RANGE, required: ['from'], produces: 'application/x-ndjson', summary: 'merged flow records, one JSON object a line (qe-packets flows --json)' },
  '/extract': { method: 'GET', role: 'analyst', query: RANGE, required: ['from'], produces: 'application/vnd.tcpdump.pcap', summary: 'the packets of a range and filter as one pcap (qe-packets extract -w -)' },
  '/audit': { method: 'GET', role: 'analyst', query: ['limit'], produces: 'application/json', summary: 'recent extractions and flow queries, newest first' },
  '/openapi.json': { method: 'GET', role: null, query: [], produces: 'application/json', summary: 'this API as OpenAPI 3.1' },
  '/reload': { method: 'POST', role: 'admin', query: [], produces: 'application/json', summary: 'reload the configuration (as SIGHUP)' },
} as const satisfies Record<string, RouteSpec>;

export type ApiPath = keyof typeof ROUTES;

/** Does `role` include `least`? */
export function roleAllows(role: Role, least: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(least);
}
