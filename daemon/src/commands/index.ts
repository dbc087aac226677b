// `qe-packets index`: builds the index of the closed capture files that need one (none, damaged,
// another format version, other fields than the config's; --rebuild: all), at low priority.
import { parseArgs } from 'node:util';
import { checkPath } from '../config/check-environment.js';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { formatSize } from '../config/units.js';
import { IDX_VERSION } from '../index/format.js';
import { scanCatalog } from '../store/catalog.js';
import type { IndexWant } from '../store/index-check.js';
import { describeNeeds, lockIndexing, planIndexing, runIndexing, type IndexPlan, type IndexPlanItem, type IndexSummary } from '../store/index-backfill.js';
import { formatIsoNs, nowNs } from '../time/format-time.js';
import { TIME_FORMS, TimeParseError, parseTime } from '../time/parse-time.js';
import { loadConfigOrReport } from './common.js';
import { ProgressBar } from './progress-bar.js';

export const indexHelp = `usage: qe-packets index [--from TIME] [--to TIME] [--rebuild] [--json] [--config FILE]

Builds the index (index.fields of the config) of the closed capture files in the range that have
none, a damaged one, one of another format version or one built with other fields, e.g. imported
captures, files from before the index existed, or after index.fields changed; likewise their flow
tables (X.pcap.qeflow, for \`flows\` and \`stats\`) when flows.enabled. Runs at low CPU and
I/O priority; the daemon does the same in the background at start.

  --from TIME, --to TIME  only files holding packets in this range (default: the whole store)
  --rebuild               rebuild every index in the range, sound or not
  --json                  print one JSON summary object on stdout instead of the summary line
  --config FILE           the daemon configuration (default ${DEFAULT_CONFIG_PATH})

TIME is ${TIME_FORMS}.
Exit status: 0 every file indexed or up to date, 1 some file could not be indexed, 2 bad arguments
or configuration, 3 another indexing run holds the store, 5 the store is not writable.`;

export const INDEX_EXIT = { ok: 0, failed: 1, usage: 2, busy: 3, notWritable: 5 } as const;

const PREFIX = 'qe-packets index';
const say = (text: string) => process.stderr.write(`${PREFIX}: ${text}\n`);

export async function indexCommand(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: { from: { type: 'string' }, to: { type: 'string' }, rebuild: { type: 'boolean' }, json: { type: 'boolean' }, config: { type: 'string' } },
  });
  const now = nowNs();
  let fromNs: bigint | undefined;
  let toNs: bigint | undefined;
  try {
    fromNs = v.from === undefined ? undefined : time('--from', v.from, now);
    toNs = v.to === undefined ? undefined : time('--to', v.to, now);
  } catch (e) {
    say((e as Error).message);
    return INDEX_EXIT.usage;
  }
  if (fromNs !== undefined && toNs !== undefined && fromNs > toNs) {
    say(`--from ${v.from} (${formatIsoNs(fromNs)}) is after --to ${v.to} (${formatIsoNs(toNs)}): swap them`);
    return INDEX_EXIT.usage;
  }
  const config = await loadConfigOrReport(v.config);
  if (!config) return INDEX_EXIT.usage;
  const want = { fields: config.index.fields, blockSizeBytes: config.index.blockSizeBytes, flows: config.flows.enabled };
  if (!want.fields.length && !want.flows) {
    say(`index.fields is [] and flows.enabled is false in ${config.source}: the index and flow tables are turned off, so there is nothing to build; list the fields to index (e.g. index.fields: [ip, port, proto, vlan]) or turn flows on, and run again`);
    return INDEX_EXIT.usage;
  }
  for (const dir of config.storage.paths) {
    const p = await checkPath('storage.paths', dir);
    if (p)
      return refuse(
        INDEX_EXIT.notWritable,
        `the store directory ${dir} ${p.message}: an index is written beside its capture file, so none can be built there; ${p.fix.replace('choose another path', 'run as a user who may write the store')}`,
      );
  }
  const lock = lockIndexing(config.storage.paths);
  if (!lock)
    return refuse(INDEX_EXIT.busy, `another indexing run holds the store (${config.storage.paths[0]}/.qe-index.lock): the daemon's background indexing or another \`qe-packets index\`; wait for it (\`qe-packets status\` shows the daemon's) and run again`);
  try {
    const catalog = await scanCatalog(config.storage.paths);
    // Files the catalog cannot read are not indexed either: said once each, as extract says them.
    for (const p of catalog.problems.slice(0, 5)) say(`warning: ${p.path}: ${p.message}`);
    if (catalog.problems.length > 5) say(`warning: ${catalog.problems.length - 5} more files could not be read`);
    const plan = await planIndexing(catalog.entries, want, { ...(fromNs !== undefined ? { fromNs } : {}), ...(toNs !== undefined ? { toNs } : {}), rebuild: Boolean(v.rebuild) });
    for (const r of plan.refused) say(`${r.entry.path}: ${describeNeeds({ ...r, needs: { index: false, flows: false } })}: left alone (extraction scans this file); upgrade qe-packets, or --rebuild to replace it with a version ${IDX_VERSION} one`);
    for (const t of plan.todo) if (rebuilt(t)) say(`${t.entry.path}: ${describeNeeds(t)}: rebuilding it`);
    if (plan.todo.length && !v.json) say(`indexing ${plan.todo.length} of ${plan.considered} files (${formatSize(plan.bytes)} of pcap) with ${[...want.fields, ...(want.flows ? ['flow tables'] : [])].join(', ')}`);
    const summary = await run(plan, want, Boolean(v.json));
    if (v.json) process.stdout.write(`${JSON.stringify(jsonSummary(plan, summary))}\n`);
    else
      process.stdout.write(
        `${summary.considered} files considered: ${summary.indexed} indexed (${formatSize(summary.indexBytes)} of index), ${summary.upToDate} already up to date, ${summary.failed} failed` +
          `${summary.refused ? `, ${summary.refused} left alone (newer index format)` : ''}\n`,
      );
    return summary.failed ? INDEX_EXIT.failed : INDEX_EXIT.ok;
  } finally {
    lock.release();
  }

  function refuse(code: number, message: string): number {
    say(message);
    if (v.json) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
    return code;
  }
}

async function run(plan: IndexPlan, want: IndexWant, json: boolean): Promise<IndexSummary> {
  const bar = process.stderr.isTTY && !json && plan.todo.length ? new ProgressBar(process.stderr, { total: plan.bytes, columns: process.stderr.columns }) : undefined;
  const summary = await runIndexing(plan, want, {
    onProgress: (done, records) => bar?.update(done, records),
    onFailed: (f) => (bar ? bar.message(`${PREFIX}: ${f.path}: ${f.message}`) : say(`${f.path}: ${f.message}`)),
  });
  bar?.finish();
  return summary;
}

function jsonSummary(plan: IndexPlan, s: IndexSummary) {
  return {
    considered: s.considered,
    indexed: s.indexed,
    up_to_date: s.upToDate,
    failed: s.failed,
    refused: s.refused,
    index_bytes: s.indexBytes,
    rebuilt: plan.todo.filter(rebuilt).map((t) => ({ path: t.entry.path, reason: describeNeeds(t) })),
    failures: s.failures,
    refused_files: plan.refused.map((r) => ({ path: r.entry.path, reason: describeNeeds({ ...r, needs: { index: false, flows: false } }) })),
  };
}

/** Something there is replaced (not merely missing). */
function rebuilt(t: IndexPlanItem): boolean {
  return (t.needs.index && t.state.state !== 'missing') || (t.needs.flows && t.flowState.state !== 'missing');
}

function time(flag: string, text: string, now: bigint): bigint {
  try {
    return parseTime(text, { nowNs: now, zone: 'local' });
  } catch (e) {
    if (e instanceof TimeParseError) throw new Error(`${flag}: ${e.message}`);
    throw e;
  }
}
