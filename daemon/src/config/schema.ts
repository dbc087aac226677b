// The configuration schema: written once, used to validate config.yaml, to type the daemon,
// and published as JSON Schema for editors (build/config.schema.json, docs/config.schema.json).
import { z } from 'zod';
import { DURATION_HELP, DURATION_PATTERN, SIZE_HELP, SIZE_PATTERN } from './units.js';

const size = (description: string) =>
  z.union([z.string().regex(new RegExp(SIZE_PATTERN), { error: `not a size: write ${SIZE_HELP}` }), z.number().int().nonnegative()])
    .meta({ description });

const duration = (description: string) =>
  z.union([z.string().regex(new RegExp(DURATION_PATTERN), { error: `not a duration: write ${DURATION_HELP}` }), z.number().nonnegative()])
    .meta({ description });

const interfaceEntry = z.union([
  z.string().min(1).meta({ description: 'Interface name, e.g. eth1' }),
  z.strictObject({
    name: z.string().min(1).meta({ description: 'Interface name, e.g. eth1' }),
    buffer: size('Kernel ring for this interface (overrides capture.buffer)').optional(),
  }),
]);

const percent = (description: string) =>
  z.string().regex(/^\s*\d+(\.\d+)?\s*%\s*$/, { error: 'not a share: write a percentage such as 0.1%' }).meta({ description });

export const configSchema = z.strictObject({
  capture: z.strictObject({
    interfaces: z.array(interfaceEntry).default([])
      .meta({ description: 'Interfaces to capture, each with its own kernel ring and file stream (the two directions of a tap are two interfaces)' }),
    filter: z.string().default('').meta({ description: 'BPF filter (tcpdump syntax) compiled by libpcap; empty keeps everything' }),
    snaplen: z.number().int().min(64).max(262144).default(262144).meta({ description: 'Bytes kept of each packet' }),
    buffer: size('Kernel capture ring per interface').default('256MiB'),
    promiscuous: z.boolean().default(true).meta({ description: 'Put capture interfaces in promiscuous mode (a mirror port needs it)' }),
  }).prefault({}),
  storage: z.strictObject({
    paths: z.array(z.string().min(1)).min(1).default(['/var/lib/qe-packets/store'])
      .meta({ description: 'Store directories, one per disk; new files go where there is most room' }),
    capacity: z.union([
      z.string().regex(new RegExp(`${SIZE_PATTERN}|^\\s*\\d+(\\.\\d+)?\\s*%\\s*$`), { error: `not a capacity: write ${SIZE_HELP}, or a share of the filesystems such as 90%` }),
      z.number().int().positive(),
    ]).default('90%').meta({ description: 'Total volume of the store across all paths: a size (10TB, 20TiB) or a share of the filesystems (90%)' }),
    mode: z.enum(['circular', 'linear'], { error: 'must be circular (delete oldest files) or linear (stop when full)' })
      .default('circular').meta({ description: 'circular deletes the oldest whole files; linear stops writing when full and never deletes' }),
    file_size: size('Size at which a pcap file is closed and the next one started').default('1GiB'),
    file_duration: z.union([duration('Also close files after this long (0 or absent: size only)'), z.null()]).optional(),
    flush_interval: duration('Open files are written to disk at least this often: a crash loses at most this much').default('1s'),
    rescan_interval: duration('How often the store is re-measured from disk (files removed by hand, imports)').default('10s'),
    direct_io: z.boolean().default(true).meta({ description: 'Live capture writes whole blocks with O_DIRECT, skipping the page-cache copy (falls back to buffered writes where the filesystem refuses it)' }),
    fsync: z.boolean().default(true).meta({ description: 'fdatasync open files every flush and closed files before they are renamed (survives power loss)' }),
  }).prefault({}),
  metrics: z.strictObject({
    listen: z.union([z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { error: 'not an address: write host:port, e.g. 127.0.0.1:9464 or [::1]:9464' }), z.literal(false)])
      .default('127.0.0.1:9464')
      .meta({ description: 'Address of the Prometheus /metrics endpoint (host:port); false turns it off. Open it on the management address only' }),
  }).prefault({}),
  control: z.strictObject({
    socket: z.string().min(1).default('/run/qe-packets/control.sock')
      .meta({ description: 'Local socket on which `qe-packets status` asks the running daemon' }),
  }).prefault({}),
  health: z.strictObject({
    drops_warning: percent('Share of packets dropped (any reason) over health.window above which the state is warning').default('0.1%'),
    drops_critical: percent('Share of packets dropped over health.window above which the state is critical').default('5%'),
    window: duration('Span over which drop shares and rates are computed').default('60s'),
    retention_target: z.union([duration('Packets should be kept at least this long; less is a warning once the store is at capacity'), z.null()]).optional(),
    store_full_warning: percent('Linear mode: share of the capacity used above which the state is warning (full is critical)').default('90%'),
  }).prefault({}),
}).meta({ title: 'Qe-Packets configuration', description: '/etc/qe-packets/config.yaml' });

export type RawConfig = z.input<typeof configSchema>;
export type ParsedRawConfig = z.output<typeof configSchema>;

export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
}
