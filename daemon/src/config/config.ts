// The validated, normalised configuration the rest of the daemon uses: numbers, not strings.
export type StorageMode = 'circular' | 'linear';

export interface InterfaceConfig {
  name: string;
  bufferBytes: number;
}

export interface Config {
  /** Where it was read from, for messages. */
  source: string;
  capture: {
    interfaces: InterfaceConfig[];
    filter: string;
    snaplen: number;
    bufferBytes: number;
    promiscuous: boolean;
  };
  storage: {
    paths: string[];
    /** As written: a size, or a share of the filesystems. */
    capacity: { bytes: number } | { percent: number };
    mode: StorageMode;
    fileSizeBytes: number;
    /** 0 when files rotate by size only. */
    fileDurationMs: number;
    flushIntervalMs: number;
    rescanIntervalMs: number;
    directIo: boolean;
    fsync: boolean;
  };
  metrics: {
    /** undefined when turned off. */
    listen?: { host: string; port: number };
  };
  control: { socket: string };
  health: {
    /** Fractions, not percentages: 0.001 for 0.1%. */
    dropsWarning: number;
    dropsCritical: number;
    windowMs: number;
    /** 0 when no target is set. */
    retentionTargetMs: number;
    storeFullWarning: number;
  };
}

export const DEFAULT_CONFIG_PATH = '/etc/qe-packets/config.yaml';
