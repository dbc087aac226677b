// How the daemon asks the native planner (`qe-extract --plan`) for the read plan of each file: the
// TypeScript copy of daemon/native/index-plan.h (which says what each item means), held to it by
// test/index-plan-wire.test.ts. This module names the words and numbers, writes a plan as the
// planner reads it, and reads the planner's answer.
import { z } from 'zod';
import { IDX_KEY } from './format.js';
import type { Lookup } from './plan.js';

export const PLAN_ITEM = { lookup: 'lookup', file: 'file' } as const;
export const PLAN_OP = { all: 'all', key: 'key', range: 'range', and: 'and', or: 'or' } as const;
export const PLAN_MAX_NODES = 4096;
export const PLAN_MAX_DEPTH = 64;
export const PLAN_MAX_TEXT = 1048576;
export const PLAN_WHY = {
  index: 'index',
  noIndex: 'no-index',
  unusable: 'index-unusable',
  fields: 'fields',
  notNarrowed: 'not-narrowed',
  dense: 'dense',
} as const;

/** A plan in index-plan.h's prefix text. */
export function encodePlan(l: Lookup): string {
  switch (l.op) {
    case 'all':
      return PLAN_OP.all;
    case 'key':
      return `${PLAN_OP.key} ${IDX_KEY[l.type]} ${l.value.toString('hex')}`;
    case 'range':
      return `${PLAN_OP.range} ${IDX_KEY[l.type]} ${l.lo.toString('hex')} ${l.hi.toString('hex')}`;
    case 'and':
    case 'or':
      return `${PLAN_OP[l.op]} ${l.args.length} ${l.args.map(encodePlan).join(' ')}`;
  }
}

const count = z.number().int().nonnegative();

/** One file's answer (a line of the planner's stdout). */
export const planAnswer = z.strictObject({
  why: z.enum([PLAN_WHY.index, PLAN_WHY.noIndex, PLAN_WHY.unusable, PLAN_WHY.fields, PLAN_WHY.notNarrowed, PLAN_WHY.dense]),
  note: z.string().optional(),
  fields: count.optional(),
  blocks: count,
  index_bytes: count,
  bytes: count.optional(),
  records: count.optional(),
  /** (start, stop) pairs, stop -1: to the end of the file. */
  ranges: z.array(z.number().int().gte(-1)).optional(),
});
export type PlanAnswer = z.output<typeof planAnswer>;
