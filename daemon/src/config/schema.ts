// The configuration schema: written once, used to validate config.yaml, to type the daemon, to
// suggest keys and fixes (keys.ts), and published as JSON Schema for editors
// (build/config.schema.json, docs/config.schema.json).
import { z } from 'zod';
import { INDICATORS, type IndicatorDefinition, type ThresholdKind } from '../elements/indicators.js';
import { IDX_BLOCK_SIZE_DEFAULT, IDX_FIELDS, type IndexField } from '../index/format.js';
import { DURATION_HELP, DURATION_PATTERN, SIZE_HELP, SIZE_PATTERN, formatSize } from './units.js';

/** The `fix:` line check-config prints for a bad value, kept next to the key it is about. It lives
 *  in its own registry, not in .meta(), so it stays out of the JSON Schema. */
export const configFixes = z.registry<{ fix: string }>();

function keyed<T extends z.ZodType>(schema: T, description: string, fix: string): T {
  configFixes.add(schema, { fix });
  return schema.meta({ description });
}

const size = (description: string, fix = `write ${SIZE_HELP}`) =>
  keyed(
    z.union([z.string().regex(new RegExp(SIZE_PATTERN), { error: `not a size: write ${SIZE_HELP}` }), z.number().int().nonnegative()]),
    description,
    fix,
  );

const duration = (description: string, fix = `write ${DURATION_HELP}`) =>
  keyed(
    z.union([z.string().regex(new RegExp(DURATION_PATTERN), { error: `not a duration: write ${DURATION_HELP}` }), z.number().nonnegative()]),
    description,
    fix,
  );

const flag = (description: string) => keyed(z.boolean(), description, 'write true or false');

const percent = (description: string, fix: string) =>
  keyed(z.string().regex(/^\s*\d+(\.\d+)?\s*%\s*$/, { error: 'not a share: write a percentage such as 0.1%' }), description, fix);

const interfaceName = () => keyed(z.string().min(1), 'Interface name, e.g. eth1', 'write an interface name, e.g. eth1 (see `qe-packets interfaces`)');

const interfaceEntry = z.union([
  interfaceName(),
  z.strictObject({
    name: interfaceName(),
    buffer: size('Kernel ring for this interface (overrides capture.buffer)').optional(),
  }),
]);

/** index.fields names, in the order the docs list them (the format's own list). */
export const INDEX_FIELD_NAMES = Object.keys(IDX_FIELDS) as [IndexField, ...IndexField[]];
const INDEX_FIELDS_FIX = `list fields from ${INDEX_FIELD_NAMES.join(', ')}, e.g. fields: [ip, port, proto, vlan]; fields: [] turns the index off`;

/** An element's id in Qe-Inventory: what the reports, metrics and API name it by. */
export const ELEMENT_ID_PATTERN = '^[A-Za-z0-9._:-]+$';

const THRESHOLD_SCHEMA: Record<ThresholdKind, (description: string) => z.ZodType> = {
  share: (d) => percent(d, 'write a percentage, e.g. 5%'),
  time: (d) => duration(d, 'write a time with its unit, e.g. 50ms or 0.2s'),
  span: (d) => duration(d, 'write a duration with its unit, e.g. 60s or 5m'),
};

function indicatorSchema(def: IndicatorDefinition) {
  const t = THRESHOLD_SCHEMA[def.threshold];
  return keyed(
    z.strictObject({
      ...(def.takesFilter ? { filter: keyed(z.string().min(1), `BPF filter a packet of the element must also match to count (${def.name})`, 'write a BPF filter in tcpdump syntax, e.g. "icmp[icmptype] == icmp-unreach"') } : {}),
      warning: t(`${def.name}: warning at or above this`).optional(),
      critical: t(`${def.name}: critical at or above this`).optional(),
    }),
    def.description,
    `write e.g. ${def.name}: ${def.example}`,
  ).optional();
}

const elementSchema = z.strictObject({
  id: keyed(
    z.string().regex(new RegExp(ELEMENT_ID_PATTERN), { error: 'not an element id: letters, digits and . _ : - only' }),
    "The element's id in Qe-Inventory (unique)",
    'write the id Qe-Inventory knows the element by, with letters, digits and . _ : - only, e.g. crm-web',
  ),
  name: keyed(z.string().min(1), 'A readable name, for the console and reports', 'write a name, e.g. CRM front end, or remove the key').optional(),
  filter: keyed(z.string().min(1), "BPF filter (tcpdump syntax) selecting the element's traffic, matched once per flow", 'write a BPF filter in tcpdump syntax, e.g. "host 10.1.2.3 and tcp port 443"'),
  window: duration('Span the indicators are computed over (default: health.window)', 'write a duration of 5s or more, e.g. 60s, or remove the key').optional(),
  indicators: keyed(
    z.strictObject(Object.fromEntries(INDICATORS.map((d) => [d.name, indicatorSchema(d)]))),
    `The indicators judging the element, each with its thresholds: ${INDICATORS.map((d) => d.name).join(', ')}`,
    `write a mapping of indicators, e.g. indicators: {tcp_resets: {warning: 1%, critical: 5%}} (known: ${INDICATORS.map((d) => d.name).join(', ')})`,
  ),
});

export const configSchema = z.strictObject({
  capture: z.strictObject({
    interfaces: keyed(
      z.array(interfaceEntry),
      'Interfaces to capture, each with its own kernel ring and file stream (the two directions of a tap are two interfaces)',
      'list interface names, e.g. interfaces: [eth1, eth2] (see `qe-packets interfaces`)',
    ).default([]),
    filter: keyed(z.string(), 'BPF filter (tcpdump syntax) compiled by libpcap; empty keeps everything', 'write a BPF filter in tcpdump syntax, e.g. "not port 22"').default(''),
    snaplen: keyed(z.number().int().min(64).max(262144), 'Bytes kept of each packet', 'use a whole number of bytes from 64 to 262144').default(262144),
    buffer: size('Kernel capture ring per interface').default('256MiB'),
    promiscuous: flag('Put capture interfaces in promiscuous mode (a mirror port needs it)').default(true),
  }).prefault({}),
  storage: z.strictObject({
    paths: keyed(
      z.array(z.string().min(1)).min(1),
      'Store directories, one per disk; new files go where there is most room',
      'list store directories, e.g. paths: [/var/lib/qe-packets/store]',
    ).default(['/var/lib/qe-packets/store']),
    capacity: keyed(
      z.union([
        z.string().regex(new RegExp(`${SIZE_PATTERN}|^\\s*\\d+(\\.\\d+)?\\s*%\\s*$`), { error: `not a capacity: write ${SIZE_HELP}, or a share of the filesystems such as 90%` }),
        z.number().int().positive(),
      ]),
      'Total volume of the store across all paths: a size (10TB, 20TiB) or a share of the filesystems (90%)',
      `write ${SIZE_HELP}, or a share of the filesystems such as 90%`,
    ).default('90%'),
    mode: keyed(
      z.enum(['circular', 'linear'], { error: 'must be circular (delete oldest files) or linear (stop when full)' }),
      'circular deletes the oldest whole files; linear stops writing when full and never deletes',
      'write circular or linear',
    ).default('circular'),
    file_size: size('Size at which a pcap file is closed and the next one started').default('1GiB'),
    file_duration: z.union([
      duration('Also close files after this long (0 or absent: size only)', `write ${DURATION_HELP}, or remove the key to rotate by size only`),
      z.null(),
    ]).optional(),
    flush_interval: duration('Open files are written to disk at least this often: a crash loses at most this much').default('1s'),
    rescan_interval: duration('How often the store is re-measured from disk (files removed by hand, imports)').default('10s'),
    direct_io: flag('Live capture writes whole blocks with O_DIRECT, skipping the page-cache copy (falls back to buffered writes where the filesystem refuses it)').default(true),
    fsync: flag('Make the store durable every flush_interval: one syncfs per store filesystem (open file, files closed since, their names), so a power loss loses at most that interval').default(true),
  }).prefault({}),
  index: z.strictObject({
    fields: keyed(
      z.array(keyed(z.enum(INDEX_FIELD_NAMES, { error: `unknown index field: known fields are ${INDEX_FIELD_NAMES.join(', ')}` }), 'An index field', INDEX_FIELDS_FIX)),
      `Fields of each packet indexed while capturing, so extraction reads only what matches: any of ${INDEX_FIELD_NAMES.join(', ')}; [] turns the index off`,
      INDEX_FIELDS_FIX,
    ).default(['ip', 'port', 'proto', 'vlan']),
    block_size: size(
      'Bytes of pcap file per index block: an index entry points into a block, so a query reads about one block per match; smaller blocks make bigger indexes',
      'write a power of two from 4KiB to 16MiB, e.g. 16KiB',
    ).default(formatSize(IDX_BLOCK_SIZE_DEFAULT)),
  }).prefault({}),
  flows: z.strictObject({
    enabled: flag('Flow records (what talked to what, how much) written while capturing beside each pcap file, for `qe-packets flows` and `stats`; without them those commands read the packets').default(true),
  }).prefault({}),
  metrics: z.strictObject({
    listen: keyed(
      z.union([z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { error: 'not an address: write host:port, e.g. 127.0.0.1:9464 or [::1]:9464' }), z.literal(false)]),
      'Address of the Prometheus /metrics endpoint (host:port); false turns it off. Open it on the management address only',
      'write host:port, e.g. 127.0.0.1:9464 (the management address on an appliance), or false to turn it off',
    ).default('127.0.0.1:9464'),
  }).prefault({}),
  api: z.strictObject({
    listen: keyed(
      z.union([z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { error: 'not an address: write host:port, e.g. 127.0.0.1:8443 or [::1]:8443' }), z.literal(false)]),
      'Address of the API and web console (host:port); false turns it off. Off the loopback interface it serves HTTPS only (api.tls.cert, api.tls.key)',
      'write host:port, e.g. 127.0.0.1:8443, or the management address with api.tls.cert and api.tls.key, or false to turn it off',
    ).default('127.0.0.1:8443'),
    tls: z.strictObject({
      cert: z.union([keyed(z.string().min(1), 'PEM certificate (chain) of the API; first boot makes a self-signed one when the API listens off loopback', 'write the path of a PEM certificate, e.g. /etc/qe-packets/api.crt'), z.null()]).optional(),
      key: z.union([keyed(z.string().min(1), 'PEM private key of api.tls.cert', 'write the path of the PEM private key, e.g. /etc/qe-packets/api.key'), z.null()]).optional(),
    }).prefault({}),
    max_extractions: keyed(
      z.number().int().min(1).max(16),
      'Extractions the API runs at once (each at idle CPU and I/O priority); more are answered 429',
      'use a whole number from 1 to 16; 2 keeps extraction from competing with capture',
    ).default(2),
  }).prefault({}),
  control: z.strictObject({
    socket: keyed(z.string().min(1), 'Local socket on which `qe-packets status` asks the running daemon', 'write a socket path, e.g. /run/qe-packets/control.sock')
      .default('/run/qe-packets/control.sock'),
  }).prefault({}),
  health: z.strictObject({
    drops_warning: percent('Share of packets dropped (any reason) over health.window above which the state is warning', 'write a percentage in quotes or plain, e.g. 0.1%').default('0.1%'),
    drops_critical: percent('Share of packets dropped over health.window above which the state is critical', 'write a percentage, e.g. 5%').default('5%'),
    window: duration('Span over which drop shares and rates are computed').default('60s'),
    retention_target: z.union([
      duration('Packets should be kept at least this long; less is a warning once the store is at capacity', `write ${DURATION_HELP}, e.g. 7d, or remove the key`),
      z.null(),
    ]).optional(),
    store_full_warning: percent('Linear mode: share of the capacity used above which the state is warning (full is critical)', 'write a percentage, e.g. 90%').default('90%'),
  }).prefault({}),
  qualevent: z.strictObject({
    url: z.union([
      keyed(
        z.string().regex(/^https?:\/\/[^\s/]+/i, { error: 'not a URL: write https://host[:port]/path' }),
        'Qe-Server URL the element states are POSTed to (CloudEvents batches); absent: no reports. https; http:// is accepted with a warning, for labs',
        'write the Qe-Server events URL, e.g. https://qe-server.example/api/events, or remove the key',
      ),
      z.null(),
    ]).optional(),
    token_file: z.union([
      keyed(z.string().min(1), 'File holding the bearer token sent to Qe-Server (never logged); absent: no Authorization header', 'write the path of a file holding the token, e.g. /etc/qe-packets/qualevent.token'),
      z.null(),
    ]).optional(),
    ca_file: z.union([
      keyed(z.string().min(1), "PEM CA certificate(s) the server's certificate must chain to, instead of the system's", 'write the path of a PEM file, e.g. /etc/qe-packets/qe-server-ca.pem, or remove the key'),
      z.null(),
    ]).optional(),
    appliance_id: z.union([
      keyed(z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, { error: 'not an appliance id: letters, digits and . _ : - only' }), 'This appliance in the events (source qe-packets/<appliance_id>); default: the host name', 'write letters, digits, . _ : or -, e.g. capture-paris-01, or remove the key to use the host name'),
      z.null(),
    ]).optional(),
    snapshot_interval: duration('Every element is also reported this often, changed or not, so a server that missed a change corrects itself').default('60s'),
    outbox_size: size('Disk room for events not yet delivered; when full, the oldest snapshots are dropped first, changes last (each drop counted)').default('100MiB'),
  }).prefault({}),
  elements: keyed(
    z.array(elementSchema),
    'Elements whose state is read from their packets (Qe-Inventory ids, filters, indicators); see README "Elements and Qualevent"',
    'list elements, each with id, filter and indicators, e.g. - {id: crm-web, filter: "host 10.1.2.3", indicators: {tcp_resets: {warning: 1%, critical: 5%}}}',
  ).default([]),
}).meta({ title: 'Qe-Packets configuration', description: '/etc/qe-packets/config.yaml' });

export type RawConfig = z.input<typeof configSchema>;
export type ParsedRawConfig = z.output<typeof configSchema>;

export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
}
