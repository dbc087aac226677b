// The validated, normalised configuration the rest of the daemon uses: numbers, not strings.
// Values that pass through unchanged take their type from the schema; the others are converted
// by load.ts, and the check at the end makes every schema key reach a field here.
import type { IndicatorName } from '../elements/indicators.js';
import type { ParsedRawConfig } from './schema.js';

type Raw = ParsedRawConfig;
export type StorageMode = Raw['storage']['mode'];

export interface InterfaceConfig {
  name: string;
  bufferBytes: number;
}

/** One indicator of an element, thresholds in the indicator's unit (THRESHOLD_UNIT: %, ms or s). */
export interface ElementIndicatorConfig {
  name: IndicatorName;
  warning?: number;
  critical?: number;
  /** Its own BPF filter (custom_share). */
  filter?: string;
}

export interface ElementConfig {
  id: string;
  name?: string;
  filter: string;
  windowMs: number;
  /** In the registry's order (elements/indicators.ts), whatever the order written. */
  indicators: ElementIndicatorConfig[];
}

export interface Config {
  /** Where it was read from, for messages. */
  source: string;
  capture: {
    interfaces: InterfaceConfig[];
    filter: Raw['capture']['filter'];
    snaplen: Raw['capture']['snaplen'];
    bufferBytes: number;
    promiscuous: Raw['capture']['promiscuous'];
  };
  storage: {
    paths: Raw['storage']['paths'];
    /** As written: a size, or a share of the filesystems. */
    capacity: { bytes: number } | { percent: number };
    mode: StorageMode;
    fileSizeBytes: number;
    /** 0 when files rotate by size only. */
    fileDurationMs: number;
    flushIntervalMs: number;
    rescanIntervalMs: number;
    directIo: Raw['storage']['direct_io'];
    fsync: Raw['storage']['fsync'];
  };
  flows: {
    /** Flow tables written while capturing and built by `qe-packets index`. */
    enabled: boolean;
  };
  index: {
    /** Empty: no index is written. Each name once, as written. */
    fields: Raw['index']['fields'];
    blockSizeBytes: number;
  };
  metrics: {
    /** undefined when turned off. */
    listen?: { host: string; port: number };
  };
  api: {
    /** undefined when turned off. */
    listen?: { host: string; port: number };
    /** Both or neither (load.ts refuses one alone); required off loopback. */
    tls: { cert?: string; key?: string };
    maxExtractions: number;
  };
  control: { socket: Raw['control']['socket'] };
  health: {
    /** Fractions, not percentages: 0.001 for 0.1%. */
    dropsWarning: number;
    dropsCritical: number;
    windowMs: number;
    /** 0 when no target is set. */
    retentionTargetMs: number;
    storeFullWarning: number;
  };
  /** Reports to Qe-Server (daemon/src/qualevent/). */
  qualevent: {
    /** undefined: no reports. */
    url?: string;
    tokenFile?: string;
    caFile?: string;
    /** As written, or the host name. */
    applianceId: string;
    snapshotIntervalMs: number;
    outboxSizeBytes: number;
  };
  /** In config order; empty when none is configured. */
  elements: ElementConfig[];
}

// A schema key with no field here (as file_size → fileSizeBytes, window → windowMs) fails the build.
type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type Unreached<R, C> = {
  [K in keyof R & string]: Extract<Camel<K> | `${Camel<K>}Bytes` | `${Camel<K>}Ms`, keyof C> extends never ? K : never;
}[keyof R & string];
type NoneOf<T extends never> = T;
export type EverySchemaKeyReachesConfig = NoneOf<
  Unreached<Raw, Config> | { [S in keyof Raw & keyof Config]: Unreached<Raw[S], Config[S]> }[keyof Raw & keyof Config]
>;

export const DEFAULT_CONFIG_PATH = '/etc/qe-packets/config.yaml';
