// The Prometheus metrics, read from one status report per scrape. The helpers' counters arrive
// once a second; a scrape only copies them, so its cost does not depend on the packet rate.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { ELEMENT_LEVEL_VALUE } from '../elements/types.js';
import { HEALTH_VALUE, type StatusReport } from '../health/figures.js';

type Labels = Record<string, string>;

// How often the event-loop delay histogram (nodejs_eventloop_lag_*_seconds) samples.
const EVENT_LOOP_SAMPLE_MS = 200;

export interface CaptureMetrics {
  registry: Registry;
  /** Renders the exposition text from a fresh report. */
  render(): Promise<string>;
}

export function createMetrics(report: () => StatusReport): CaptureMetrics {
  const registry = new Registry();
  // prom-client's defaults include three gauges named *_total, which promtool rightly flags (a
  // _total suffix promises a counter); the same figures are there without the suffix.
  const defaults = new Registry();
  // prom-client samples event-loop delay on a 10 ms timer by default: a hundred wake-ups a second
  // that made the idle daemon use 110 ms of CPU in 20 s (22 ms at 200 ms). The stalls worth seeing
  // on a capture appliance last far longer.
  collectDefaultMetrics({ register: defaults, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  for (const m of defaults.getMetricsAsArray()) if (!/^nodejs_active_\w+_total$/.test(m.name)) registry.registerMetric(m as unknown as Metric);
  let current: StatusReport | undefined;
  const now = () => (current ??= report());

  // Counters that mirror totals kept elsewhere: reset and set to the total at each scrape.
  const mirror = (name: string, help: string, labelNames: string[], values: (r: StatusReport) => [Labels, number][]) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, v] of values(now())) this.inc(labels, v);
      },
    });
  const gauge = (name: string, help: string, labelNames: string[], values: (r: StatusReport) => [Labels, number][]) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, v] of values(now())) this.set(labels, v);
      },
    });
  const perInterface = (pick: (i: StatusReport['figures']['interfaces'][number]) => number) => (r: StatusReport) =>
    r.figures.interfaces.map((i): [Labels, number] => [{ interface: i.name }, pick(i)]);

  mirror('qe_packets_captured_packets_total', 'Packets written to the store', ['interface'], perInterface((i) => i.counters.written));
  mirror('qe_packets_captured_bytes_total', 'Bytes written to the store for these packets (pcap record and file headers included: what they cost on disk)', ['interface'], perInterface((i) => i.counters.written_bytes));
  mirror('qe_packets_received_packets_total', 'Packets the capture helper received from the kernel, before the BPF filter', ['interface'], perInterface((i) => i.counters.received));
  mirror('qe_packets_filtered_packets_total', 'Packets left out by the BPF filter (capture.filter)', ['interface'], perInterface((i) => i.counters.filtered));
  mirror('qe_packets_dropped_packets_total', 'Packets lost: kernel ring full, interface (NIC) drops, writer behind, or store full (linear mode)', ['interface', 'reason'], (r) =>
    r.figures.interfaces.flatMap((i): [Labels, number][] => [
      [{ interface: i.name, reason: 'kernel' }, i.counters.kernel_drops],
      [{ interface: i.name, reason: 'interface' }, i.counters.if_drops],
      [{ interface: i.name, reason: 'writer' }, i.counters.writer_drops],
      [{ interface: i.name, reason: 'store_full' }, i.counters.store_full_drops],
    ]),
  );
  mirror('qe_packets_write_errors_total', 'Failed writes to the store (each is retried; packets are kept in memory meanwhile)', ['interface'], perInterface((i) => i.counters.write_errors));
  mirror('qe_packets_files_written_total', 'pcap files closed since the daemon started', ['interface'], perInterface((i) => i.filesWritten));
  mirror('qe_packets_files_deleted_total', 'pcap files deleted by circular retention since the daemon started', [], (r) => [[{}, r.figures.store.filesDeleted]]);
  mirror('qe_packets_capture_restarts_total', 'Times a capture helper was restarted after it ended', ['interface'], perInterface((i) => i.restarts));

  gauge('qe_packets_capture_up', '1 while the interface is being captured', ['interface'], perInterface((i) => (i.up ? 1 : 0)));
  gauge('qe_packets_storage_used_bytes', 'Bytes held by the store (closed and open files)', [], (r) => [[{}, r.figures.store.usedBytes]]);
  gauge('qe_packets_storage_capacity_bytes', 'Capacity of the store (storage.capacity)', [], (r) => [[{}, r.figures.store.capacityBytes]]);
  gauge('qe_packets_storage_free_bytes', 'Free bytes on the filesystems of the store', [], (r) => [[{}, r.figures.store.freeBytes]]);
  gauge('qe_packets_storage_full', '1 while a linear store is full and packets are not written', [], (r) => [[{}, r.figures.store.full ? 1 : 0]]);
  gauge('qe_packets_retention_seconds', 'Age of the oldest packet kept', [], (r) =>
    r.figures.store.retentionSeconds === undefined ? [] : [[{}, r.figures.store.retentionSeconds]],
  );
  gauge('qe_packets_oldest_packet_timestamp_seconds', 'Capture time of the oldest packet kept (Unix seconds)', [], (r) =>
    r.figures.store.oldestNs === undefined ? [] : [[{}, Number(r.figures.store.oldestNs) / 1e9]],
  );
  gauge('qe_packets_retention_target_seconds', 'health.retention_target: how long packets should be kept (absent when not set)', [], (r) =>
    r.figures.store.retentionTargetSeconds === undefined ? [] : [[{}, r.figures.store.retentionTargetSeconds]],
  );
  gauge('qe_packets_index_pending_files', 'Closed files the daemon is still to index in the background (0 when all have an index of index.fields)', [], (r) =>
    r.figures.index ? [[{}, r.figures.index.pendingFiles]] : [],
  );
  gauge('qe_packets_index_pending_bytes', 'Bytes of pcap files the background indexing is still to read', [], (r) => (r.figures.index ? [[{}, r.figures.index.pendingBytes]] : []));
  mirror('qe_packets_index_files_total', 'Closed files indexed in the background since the daemon started, by result', ['result'], (r) =>
    r.figures.index
      ? [
          [{ result: 'indexed' }, r.figures.index.indexedFiles],
          [{ result: 'failed' }, r.figures.index.failedFiles],
        ]
      : [],
  );
  gauge('qe_packets_storage_mode_info', 'Retention mode of the store (storage.mode), as a label', ['mode'], (r) => [[{ mode: r.figures.store.mode }, 1]]);
  const q = (pick: (q: NonNullable<StatusReport['figures']['qualevent']>) => number) => (r: StatusReport): [Labels, number][] =>
    r.figures.qualevent ? [[{}, pick(r.figures.qualevent)]] : [];
  mirror('qe_packets_qualevent_events_sent_total', 'Element state events Qe-Server took (2xx) since the daemon started', [], q((x) => x.sent));
  mirror('qe_packets_qualevent_events_dropped_total', 'Events dropped because the outbox was full (qualevent.outbox_size), oldest snapshots first', [], q((x) => x.dropped));
  mirror('qe_packets_qualevent_events_parked_total', 'Events Qe-Server refused (4xx), set aside in the parked file instead of retried', [], q((x) => x.parked));
  gauge('qe_packets_qualevent_outbox_events', 'Events in the outbox, not yet delivered to Qe-Server', [], q((x) => x.outboxEvents));
  gauge('qe_packets_qualevent_outbox_bytes', 'Bytes the undelivered events hold against qualevent.outbox_size', [], q((x) => x.outboxBytes));
  gauge('qe_packets_qualevent_last_delivery_timestamp_seconds', 'When Qe-Server last took events (Unix seconds)', [], (r) =>
    r.figures.qualevent?.lastDeliveryAt !== undefined ? [[{}, r.figures.qualevent.lastDeliveryAt / 1000]] : [],
  );
  gauge('qe_packets_state', 'Health: 0 ok, 1 warning, 2 critical (qe-packets status gives the reasons)', [], (r) => [[{}, HEALTH_VALUE[r.state]]]);
  gauge('qe_packets_element_state', 'State of each configured element: 0 ok, 1 warning, 2 critical, 3 unknown (qe-packets status gives the reasons)', ['element'], (r) =>
    (r.figures.elements ?? []).map((e): [Labels, number] => [{ element: e.element }, ELEMENT_LEVEL_VALUE[e.state]]),
  );
  gauge('qe_packets_element_indicator', "Each element indicator's value over the element's window, in its unit (% for shares, ms for handshake times, s for silence); absent while not measurable", ['element', 'indicator'], (r) =>
    (r.figures.elements ?? []).flatMap((e) =>
      Object.entries(e.figures).flatMap(([indicator, v]): [Labels, number][] => (v === null ? [] : [[{ element: e.element, indicator }, v]])),
    ),
  );
  gauge('qe_packets_build_info', 'Version of the running daemon', ['version'], (r) => [[{ version: r.figures.version }, 1]]);

  return {
    registry,
    async render() {
      current = undefined;
      try {
        return await registry.metrics();
      } finally {
        current = undefined;
      }
    },
  };
}
