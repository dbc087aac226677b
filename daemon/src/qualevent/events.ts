// The wire format Qe-Server reads: CloudEvents 1.0, structured JSON mode, POSTed as batches
// (application/cloudevents-batch+json: a JSON array of events). Written once here; the tests read
// what the receiver got with the `cloudevents` SDK.
import type { ElementState } from '../elements/types.js';
import { uuidv7 } from './uuid7.js';

export const EVENT_TYPE = 'com.allentis.qualevent.element.state';
export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';

/** `change`: the element changed state (one per change, numbered); `snapshot`: its state at a
 *  snapshot_interval tick, carrying the number of the last change it includes. */
export type EventKind = 'change' | 'snapshot';

/** The event's data: the element's state as the engine gives it (types.ts, written once there),
 *  numbered. */
export interface QualeventData extends ElementState {
  /** Per element, contiguous over changes (1, 2, 3… across restarts): a gap is a lost change. A
   *  snapshot repeats the sequence of the last change, so dropping one leaves no gap. */
  sequence: number;
  kind: EventKind;
}

export interface StateEvent {
  specversion: '1.0';
  type: typeof EVENT_TYPE;
  source: string;
  subject: string;
  id: string;
  time: string;
  datacontenttype: 'application/json';
  data: QualeventData;
}

export function stateEvent(applianceId: string, s: ElementState, sequence: number, kind: EventKind, now = Date.now()): StateEvent {
  return {
    specversion: '1.0',
    type: EVENT_TYPE,
    source: `qe-packets/${applianceId}`,
    subject: s.element,
    id: uuidv7(now),
    time: new Date(now).toISOString(),
    datacontenttype: 'application/json',
    // Field by field, not a spread: the server's contract does not grow when ElementState does.
    data: {
      element: s.element,
      ...(s.name !== undefined ? { name: s.name } : {}),
      state: s.state,
      previous: s.previous,
      since: s.since,
      reasons: s.reasons,
      figures: s.figures,
      window_seconds: s.window_seconds,
      sequence,
      kind,
    },
  };
}
