// The API as OpenAPI 3.1, derived from types.ts's route table: paths, methods, parameters, the
// roles and the content types come from there; the response schemas below describe types.ts's
// response types (test/api.test.ts holds real answers of a running daemon to them, and the
// document to the OpenAPI 3.1 schema).
import { ELEMENT_LEVELS } from '../elements/types.js';
import { API_PREFIX, ROUTES, type ApiPath, type QueryParam } from './types.js';

type Schema = Record<string, unknown>;

const str = { type: 'string' };
const int = { type: 'integer', minimum: 0 };
const num = { type: 'number' };
const bool = { type: 'boolean' };
const obj = (properties: Record<string, Schema>, required = Object.keys(properties), extra = false): Schema => ({ type: 'object', properties, required, additionalProperties: extra });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const PARAMS: Record<QueryParam, { description: string; example?: string }> = {
  from: { description: 'start of the range (inclusive): ISO 8601 (without a zone: UTC), epoch seconds, now, or "15m ago"', example: '15m ago' },
  to: { description: 'end of the range (inclusive); default now', example: 'now' },
  filter: { description: 'libpcap filter, meant as it was live (a filter without vlan sees a tagged frame without its outer tag)', example: 'host 10.0.0.5 and tcp port 443' },
  iface: { description: 'only these interfaces: comma-separated, or the parameter repeated', example: 'eth1' },
  by: { description: 'host, src, dst, conversation, port, proto, vlan or iface (default host)' },
  top: { description: 'rows of the table (default 10)' },
  interval: { description: 'also a time series per interval: 1s, 5m, 1h' },
  limit: { description: 'entries, 1 to 1000 (default 50)' },
  ticket: { description: 'the ticket of a link made by POST /extract/link (single use, valid 60 s)' },
};

const statusSchema = obj(
  {
    state: { enum: ['ok', 'warning', 'critical'] },
    reasons: arr(obj({ level: { enum: ['warning', 'critical'] }, code: str, interface: str, message: str }, ['level', 'code', 'message'])),
    figures: obj(
      {
        at: num,
        version: str,
        startedAt: num,
        interfaces: arr({ type: 'object', required: ['name', 'up', 'counters', 'window'] }),
        store: { type: 'object', required: ['mode', 'usedBytes', 'capacityBytes'] },
        index: { type: 'object' },
        api: obj({ url: str, fingerprint: { type: ['string', 'null'] } }),
        // Reports to Qe-Server (health/figures.ts QualeventFigures), when qualevent.url is set.
        qualevent: { type: 'object', required: ['url', 'applianceId', 'outboxEvents', 'sent', 'dropped', 'parked'] },
        elements: arr(ref('ElementState')),
      },
      ['at', 'version', 'startedAt', 'interfaces', 'store'],
    ),
  },
  ['state', 'reasons', 'figures'],
);

const range = { from: str, to: str };
const PCAP_PATHS: readonly ApiPath[] = ['/extract', '/extract/download'];
/** The queries whose empty answer the command reports with exit 3: the API's 404 empty_range. */
const EMPTY_RANGE_PATHS: readonly ApiPath[] = ['/files', '/stats', '/flows', '/extract', '/extract/link', '/extract/download'];
const SCHEMAS: Record<Exclude<ApiPath, '/extract' | '/extract/download' | '/flows'>, Schema> = {
  '/info': obj({ version: str, tls_fingerprint: { type: ['string', 'null'] } }),
  '/whoami': obj({ name: str, role: ref('Role') }),
  '/status': statusSchema,
  '/files': obj({
    ...range,
    files: arr(obj({ path: str, iface: str, first: str, last: str, packets: int, bytes: int, size: int, partial: bool, linktype: int })),
    total: obj({ files: int, packets: int, bytes: int, size: int }),
  }),
  '/stats': obj(
    {
      ...range,
      by: str,
      total: obj({ packets: int, bytes: int, flows: int }),
      rows: arr(obj({ key: { type: ['string', 'integer'] }, packets: int, bytes: int, flows: int })),
      series: arr(obj({ start: str, packets: int, bytes: int })),
    },
    ['from', 'to', 'by', 'total', 'rows'],
  ),
  '/history': obj({
    interval_s: num,
    samples: arr(obj({ t: num, interfaces: arr(obj({ name: str, packets_per_s: num, bits_per_s: num, drops_per_s: num })), store: obj({ used_bytes: num, capacity_bytes: num }) })),
  }),
  '/explain': { type: 'object', required: ['from', 'to', 'filter', 'plan', 'files', 'bytes_to_read', 'estimated_s', 'per_file'], properties: { from: str, to: str, filter: { type: ['string', 'null'] }, plan: { type: ['string', 'null'] }, files: int, bytes_to_read: int, estimated_s: num, per_file: arr({ type: 'object' }) } },
  '/extract/link': obj({ url: str, expires: str }),
  '/audit': obj({ entries: arr(ref('AuditEntry')) }),
  '/elements': obj({ elements: arr(ref('ElementState')) }),
  '/openapi.json': { type: 'object', required: ['openapi', 'paths'] },
  '/reload': obj({ applied: { const: true }, restart_needed: arr(str) }),
};

const flowLine = obj({
  community_id: { type: ['string', 'null'] },
  iface: str,
  vlan: arr({ type: 'integer' }),
  proto: { type: ['string', 'integer'] },
  src: { type: ['string', 'null'] },
  sport: { type: ['integer', 'null'] },
  dst: { type: ['string', 'null'] },
  dport: { type: ['integer', 'null'] },
  first: str,
  last: str,
  packets: int,
  bytes: int,
  packets_rev: int,
  bytes_rev: int,
  tcp_flags: { type: ['string', 'null'] },
  syn: int,
  synack: int,
  fin: int,
  rst: int,
  rtt_ms: { type: ['number', 'null'] },
});

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: ref('Error') } } });

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const [path, spec] of Object.entries(ROUTES) as [ApiPath, (typeof ROUTES)[ApiPath]][]) {
    const required: readonly string[] = 'required' in spec ? spec.required : [];
    const pcap = PCAP_PATHS.includes(path);
    const content = pcap
      ? { 'application/vnd.tcpdump.pcap': { schema: { type: 'string', contentMediaType: 'application/vnd.tcpdump.pcap' } } }
      : path === '/flows'
        ? { 'application/x-ndjson': { schema: flowLine } }
        : { 'application/json': { schema: SCHEMAS[path as keyof typeof SCHEMAS] } };
    const responses: Record<string, unknown> = {
      '200': {
        description: pcap ? 'the pcap (nanosecond, the store link type), with Content-Disposition: attachment; filename=…' : path === '/flows' ? 'one flow a line (JSON lines)' : 'success',
        content,
      },
    };
    const ticket = 'ticket' in spec && spec.ticket;
    if ((spec.query.length && !ticket) || path === '/reload') responses['400'] = errorResponse("a bad time, range, filter, interface or parameter: the command's message");
    if (EMPTY_RANGE_PATHS.includes(path)) responses['404'] = errorResponse('empty_range: nothing in the range (the command exits 3), in the command\'s words');
    if (spec.role || ticket) {
      responses['401'] = errorResponse(ticket ? 'an unknown, used or expired ticket' : 'no token, or not a valid one');
      if (spec.role) responses['403'] = errorResponse(`the token's role is below ${spec.role}`);
      responses['429'] = errorResponse(pcap ? 'api.max_extractions running, or too many failed attempts from this address' : 'too many failed attempts from this address');
    }
    responses['431'] = errorResponse('request headers too large');
    paths[`${API_PREFIX}${path}`] = {
      [spec.method.toLowerCase()]: {
        operationId: path.replace(/^\//, '').replace(/\.json$/, '').replace(/[^a-z]/gi, '_'),
        summary: spec.summary,
        description: spec.role ? `Needs a token of role ${spec.role} or above.` : ticket ? 'No token: the ticket is the credential.' : 'No token needed.',
        security: spec.role ? [{ bearer: [] }] : [],
        parameters: spec.query.map((name) => ({ name, in: 'query', required: required.includes(name), description: PARAMS[name].description, schema: { type: 'string' }, ...(PARAMS[name].example ? { example: PARAMS[name].example } : {}) })),
        responses,
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Qe-Packets API',
      version,
      description:
        'The appliance\'s API: what `qe-packets status`, `extract`, `flows` and `stats` answer, over HTTPS (plain HTTP on loopback only). Tokens: `qe-packets token create NAME --role viewer|analyst|admin`, sent as `Authorization: Bearer TOKEN`. Errors are `{"error": {"code", "message"}}` with the command\'s message. Every extraction and flow query is written to the audit log.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a token made by qe-packets token create' } },
      schemas: {
        Role: { enum: ['viewer', 'analyst', 'admin'] },
        Error: obj({ error: obj({ code: str, message: str }) }),
        ElementState: obj(
          {
            element: str,
            name: str,
            state: { enum: [...ELEMENT_LEVELS] },
            previous: { enum: [...ELEMENT_LEVELS, null] },
            since: str,
            reasons: arr(obj({ indicator: str, value: num, threshold: num, level: { enum: ['warning', 'critical'] }, unit: { enum: ['%', 'ms', 's'] } })),
            figures: { type: 'object', additionalProperties: { type: ['number', 'null'] } },
            window_seconds: num,
          },
          ['element', 'state', 'previous', 'since', 'reasons', 'figures', 'window_seconds'],
        ),
        AuditEntry: obj(
          {
            time: str,
            token: str,
            role: ref('Role'),
            address: str,
            action: { enum: ['extract', 'flows'] },
            query: obj({ from: str, to: str, filter: { type: ['string', 'null'] }, iface: arr(str) }),
            packets: int,
            bytes: int,
            status: int,
            outcome: { enum: ['complete', 'cancelled', 'refused', 'failed'] },
            error: str,
          },
          ['time', 'token', 'role', 'address', 'action', 'query', 'packets', 'bytes', 'status', 'outcome'],
        ),
      },
    },
    paths,
  };
}
