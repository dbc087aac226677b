/* How the daemon asks the native planner (`qe-extract --plan`, read-plan.c) which bytes of each
 * file a filtered extraction reads. Its one other copy is daemon/src/index/plan-wire.ts, which
 * test/index-plan-wire.test.ts holds to this header.
 *
 * The daemon parses the BPF expression into lookups (daemon/src/index/plan.ts) once per query; the
 * planner reads every file's index with them (index-read.c), so the per-file work (headers,
 * fences and runs of entries, posting lists, block tables) is native code on a few threads rather than
 * JavaScript, one file after another.
 *
 *   qe-extract --plan [--merge-gap BLOCKS] [--dense SHARE] [--needed BITS] < REQUEST
 *
 * A plan depends on the fields an index holds: --needed is the set of fields (enum qe_idx_field
 * bits) the filter's lookups use when every field is there, and the request gives the plan for
 * each subset MASK of it; a file whose index holds fields F uses the plan of MASK = F & needed (no
 * plan for it: the index is not used, as for ALL).
 *
 * REQUEST (stdin), one item a line, the first word saying which:
 *   lookup MASK PLAN                   the plan for indexes holding fields MASK of --needed
 *   file SIZE PACKETS PARTIAL FIRST_NS LINKTYPE PATH
 *                                      a file to plan: the catalog's size and packet count,
 *                                      PARTIAL 1 for an open .part file (its tail past what the
 *                                      index covers is read whole), the time of its first record
 *                                      as written and its link type (what its index is checked
 *                                      against; both `-` when the catalog does not know them: the
 *                                      planner reads the file's first record then); PATH to the
 *                                      end of the line
 * PLAN, in prefix form, tokens separated by one space:
 *   all                          no narrowing
 *   key TYPE HEX                 blocks holding key (TYPE, value)
 *   range TYPE HEXLO HEXHI       blocks holding a key of TYPE with LO <= value <= HI (one length)
 *   and N PLAN*N  /  or N PLAN*N intersection / union of N >= 1 plans
 * TYPE is an enum qe_idx_key_type number, HEX 1 to QE_IDX_VALUE_LEN bytes as lowercase hex.
 *
 * stdout: one JSON line per file, in the request's order:
 *   {"why":WHY[,"note":TEXT][,"fields":BITS],"blocks":N,"index_bytes":N[,"bytes":N,"records":N,"ranges":[A,B,...]]}
 * WHY is one of the QE_PLAN_WHY_* words; "fields" is the index's field bits (every WHY but
 * no-index and index-unusable); bytes, records and ranges only with "index": ranges are (start,
 * stop) pcap offsets, stop -1 for "to the end of the file". A note says why an index is unusable.
 * Exit: 0, or 2 with a message on stderr for a bad argument or list (nothing on stdout then). */
#ifndef QE_INDEX_PLAN_H
#define QE_INDEX_PLAN_H

#define QE_PLAN_ITEM_LOOKUP "lookup"
#define QE_PLAN_ITEM_FILE "file"

#define QE_PLAN_OP_ALL "all"
#define QE_PLAN_OP_KEY "key"
#define QE_PLAN_OP_RANGE "range"
#define QE_PLAN_OP_AND "and"
#define QE_PLAN_OP_OR "or"

/* Bounds on what the planner accepts: a plan this big is already far past any filter a person
 * types (the planner flattens nested and/or). */
#define QE_PLAN_MAX_NODES 4096
#define QE_PLAN_MAX_DEPTH 64
#define QE_PLAN_MAX_TEXT 1048576

#define QE_PLAN_WHY_INDEX "index"
#define QE_PLAN_WHY_NO_INDEX "no-index"
#define QE_PLAN_WHY_UNUSABLE "index-unusable"
#define QE_PLAN_WHY_FIELDS "fields"
#define QE_PLAN_WHY_NOT_NARROWED "not-narrowed"
#define QE_PLAN_WHY_DENSE "dense"

#endif
