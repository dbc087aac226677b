// The filter planner: from a BPF expression (libpcap syntax), the index lookups that narrow the
// read. A plan only narrows: every leaf yields a SUPERSET of the blocks holding packets the exact
// filter selects (qe-extract still applies the filter to every record it reads), so the result
// never depends on the plan. Whatever the planner does not understand, or cannot answer from the
// fields an index holds, becomes ALL (read everything that index covers).
//
// What the leaves may assume of an index (docs/INDEX.md, "What a key covers"), and so what the
// builder must index: `ip` keys hold every address of the outermost IP header past any VLAN/QinQ/
// MPLS stack, for every fragment, and ARP/RARP sender and target addresses (libpcap's `host X`
// matches ARP too); `port` keys hold TCP/UDP/SCTP ports, and a later fragment is indexed under
// its first fragment's ports (qe-extract passes later fragments of a matching first fragment);
// `proto` holds the IPv4 protocol of every fragment and IPv6's upper-layer header after the
// extension headers (a later fragment: the fragment header's next header); `vlan` every VLAN ID
// of the stack; `mac` source and destination.
import { IDX_FIELDS, IDX_KEY, type IndexField } from './format.js';

/** A key type of the index, by name. */
export type KeyType = keyof typeof IDX_KEY;

export type Lookup =
  | { op: 'all' }
  | { op: 'key'; type: KeyType; value: Buffer }
  /** Every key of `type` with lo <= value <= hi (values as left-aligned bytes of one length). */
  | { op: 'range'; type: KeyType; lo: Buffer; hi: Buffer }
  | { op: 'and'; args: Lookup[] }
  | { op: 'or'; args: Lookup[] };

export const ALL: Lookup = { op: 'all' };

// ---- tokens ----------------------------------------------------------------------------------

type Tok = { t: 'word' | 'op' | '(' | ')'; v: string };

const OPS = ['&&', '||', '!=', '==', '>=', '<=', '<<', '>>', '!', '=', '>', '<', '[', ']', ':', '+', '-', '*', '/', '&', '|', '%', '^'];

/** Splits like libpcap's scanner does where it matters: words hold addresses (`a:b::c`, `10.0.0.0`, `aa:bb:..`), names, `\tcp`. */
export function tokenize(text: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(' || c === ')') {
      out.push({ t: c, v: c });
      i++;
      continue;
    }
    const m = /^\\?[A-Za-z0-9_.:\-]+(\/[0-9]+)?/.exec(text.slice(i));
    // A word may hold `-` (names, `tcp-syn`, portranges) and `:` (IPv6, MACs); an operator word
    // like `-` or `:` alone stays an operator.
    if (m && (/[A-Za-z0-9_\\]/.test(m[0][0]!) || m[0].startsWith('::'))) {
      out.push({ t: 'word', v: m[0] });
      i += m[0].length;
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (!op) throw new PlanSyntax(`unexpected ${JSON.stringify(c)}`);
    out.push({ t: 'op', v: op });
    i += op.length;
  }
  return out;
}

class PlanSyntax extends Error {}

// ---- syntax tree -----------------------------------------------------------------------------

export type Node =
  | { k: 'and' | 'or'; a: Node; b: Node }
  | { k: 'not'; a: Node }
  | { k: 'prim'; words: string[]; opaque: boolean; shifted: boolean; shifter: boolean; tunnelShifted: boolean };

/** Qualifiers a bare value after and/or/not takes from the primitive before it (`host a or b`). */
interface Quals {
  proto?: string;
  dir?: string;
  type?: string;
}

const PROTOS = new Set(['ether', 'fddi', 'tr', 'wlan', 'ip', 'ip6', 'arp', 'rarp', 'decnet', 'sctp', 'tcp', 'udp', 'icmp', 'icmp6', 'igmp', 'igrp', 'pim', 'vrrp', 'carp', 'ah', 'esp', 'atalk', 'aarp', 'lat', 'moprc', 'mopdl', 'iso', 'esis', 'isis', 'clnp', 'stp', 'ipx', 'netbeui', 'link', 'ppp', 'slip', 'radio']);
const DIRS = new Set(['src', 'dst']);
const TYPES = new Set(['host', 'net', 'port', 'portrange', 'gateway', 'proto', 'protochain']);
// Keywords after which libpcap reads what follows at shifted offsets. After the link-layer ones the
// builder indexes what follows too (it walks VLAN, MPLS and PPPoE to the IP header); after a
// tunnel's, libpcap reads the inner packet, which the index may not hold (Geneve never).
const LINK_SHIFTERS = new Set(['vlan', 'mpls', 'pppoes']);
const SHIFTERS = new Set([...LINK_SHIFTERS, 'pppoed', 'geneve', 'vxlan']);
const CONJ = new Set(['and', '&&', 'or', '||']);

class Parser {
  private i = 0;
  private last: Quals | undefined;
  private shifted = false;
  private tunnelShifted = false;
  constructor(private readonly toks: Tok[]) {}

  parse(): Node {
    const n = this.expr();
    if (this.i < this.toks.length) throw new PlanSyntax(`unexpected ${this.toks[this.i]!.v}`);
    return n;
  }

  private peek(): Tok | undefined {
    return this.toks[this.i];
  }

  // libpcap: `and` and `or` share one precedence and group to the left.
  private expr(): Node {
    let left = this.term();
    for (;;) {
      const t = this.peek();
      if (!t || !CONJ.has(t.v) || t.t === '(' || t.t === ')') return left;
      this.i++;
      const k = t.v === 'and' || t.v === '&&' ? 'and' : 'or';
      left = { k, a: left, b: this.term() };
    }
  }

  private term(): Node {
    const t = this.peek();
    if (!t) throw new PlanSyntax('expression ends early');
    if (t.v === 'not' || t.v === '!') {
      this.i++;
      return { k: 'not', a: this.term() };
    }
    if (t.t === '(' ) {
      // A parenthesis opening an arithmetic expression (`(ip[0]&0xf) > 5`) is one primitive:
      // find out by parsing, and on failure take it whole as opaque.
      const save = this.i;
      const saveLast = this.last;
      const saveShift = this.shifted;
      const saveTunnel = this.tunnelShifted;
      try {
        this.i++;
        const n = this.expr();
        if (this.peek()?.t !== ')') throw new PlanSyntax('missing )');
        this.i++;
        const after = this.peek();
        if (after && !CONJ.has(after.v) && after.t !== ')') throw new PlanSyntax('arithmetic');
        return n;
      } catch (e) {
        if (!(e instanceof PlanSyntax)) throw e;
        this.i = save;
        this.last = saveLast;
        this.shifted = saveShift;
        this.tunnelShifted = saveTunnel;
        return this.primitive();
      }
    }
    return this.primitive();
  }

  /** The tokens up to the next and/or/`)` at this depth (parentheses inside belong to it). */
  private primitive(): Node {
    const words: string[] = [];
    let depth = 0;
    let opaque = false;
    while (this.i < this.toks.length) {
      const t = this.toks[this.i]!;
      // `src or dst host a` / `src and dst host a` is one qualifier, not two primitives.
      const dirPair = DIRS.has(words[words.length - 1] ?? '') && DIRS.has(this.toks[this.i + 1]?.v ?? '');
      if (depth === 0 && !dirPair && (t.t === ')' || (t.t === 'word' && (t.v === 'and' || t.v === 'or')) || t.v === '&&' || t.v === '||')) break;
      if (t.t === '(') depth++;
      if (t.t === ')') depth--;
      if (t.t !== 'word') opaque = true;
      // `not` inside a primitive (`host a and not b` is split before it) only appears after a
      // qualifier-less start; keep it opaque.
      if (t.t === 'word' && t.v === 'not') opaque = true;
      words.push(t.v);
      this.i++;
    }
    if (words.length === 0) throw new PlanSyntax('empty primitive');
    const shifter = words.some((w) => SHIFTERS.has(w));
    const node: Node = { k: 'prim', words: this.withQuals(words), opaque, shifted: this.shifted, shifter, tunnelShifted: this.tunnelShifted };
    if (shifter) this.shifted = true;
    if (words.some((w) => SHIFTERS.has(w) && !LINK_SHIFTERS.has(w))) this.tunnelShifted = true;
    return node;
  }

  /** Gives a bare value the qualifiers of the primitive before it, as libpcap does. */
  private withQuals(words: string[]): string[] {
    const quals: Quals = {};
    let j = 0;
    for (; j < words.length - 1; j++) {
      const w = words[j]!;
      if (PROTOS.has(w) && quals.proto === undefined && quals.dir === undefined && quals.type === undefined) quals.proto = w;
      else if (DIRS.has(w) && quals.dir === undefined && quals.type === undefined) {
        quals.dir = w;
        // `src or dst`, `src and dst`
        if ((words[j + 1] === 'or' || words[j + 1] === 'and') && DIRS.has(words[j + 2] ?? '')) j += 2;
      } else if (TYPES.has(w) && quals.type === undefined) quals.type = w;
      else break;
    }
    const hasQuals = j > 0;
    if (hasQuals) {
      this.last = quals;
      return words;
    }
    if (words.length === 1 && this.last && !isKeyword(words[0]!)) {
      const q = this.last;
      return [...(q.proto ? [q.proto] : []), ...(q.dir ? [q.dir] : []), ...(q.type ? [q.type] : []), words[0]!];
    }
    // A value standing alone takes libpcap's defaults and passes them on; a keyword (`tcp`) leaves
    // nothing to carry.
    this.last = words.length === 1 && !isKeyword(words[0]!) ? {} : undefined;
    return words;
  }
}

function isKeyword(w: string): boolean {
  return PROTOS.has(w) || DIRS.has(w) || TYPES.has(w) || SHIFTERS.has(w) || ['and', 'or', 'not', 'less', 'greater', 'len', 'broadcast', 'multicast', 'inbound', 'outbound', 'ifindex'].includes(w);
}

export function parseFilter(text: string): Node | undefined {
  try {
    return new Parser(tokenize(text)).parse();
  } catch (e) {
    if (e instanceof PlanSyntax) return undefined;
    throw e;
  }
}

// ---- lowering --------------------------------------------------------------------------------

/** The plan for an index built with `fields`: lookups whose result holds every matching block. */
export function planFilter(filter: string | undefined, fields: ReadonlySet<IndexField> | readonly IndexField[]): Lookup {
  if (filter === undefined || filter.trim() === '') return ALL;
  const tree = parseFilter(filter);
  if (!tree) return ALL;
  const have = new Set(fields);
  // Primitives after a `vlan` (or `mpls`...) read shifted offsets: their keys hold only when the
  // shifting primitive is sure to have matched, that is when both sit on the top-level `and` chain.
  const top = new Set<Node>();
  const chain = (n: Node) => {
    if (n.k === 'and') {
      chain(n.a);
      chain(n.b);
    } else top.add(n);
  };
  chain(tree);
  const shiftersOnTop = allPrims(tree).filter((p) => p.shifter).every((p) => top.has(p));
  const lower = (n: Node): Lookup => {
    switch (n.k) {
      case 'and':
        return and([lower(n.a), lower(n.b)]);
      case 'or':
        return or([lower(n.a), lower(n.b)]);
      case 'not':
        return ALL; // a block holding X may hold non-X packets too
      case 'prim': {
        if (n.tunnelShifted || (n.shifted && !(shiftersOnTop && top.has(n)))) return ALL;
        const l = n.opaque ? ALL : primitive(n.words);
        return l.op === 'all' || fieldsPresent(l, have) ? l : ALL;
      }
    }
  };
  return lower(tree);
}

function allPrims(n: Node): Extract<Node, { k: 'prim' }>[] {
  if (n.k === 'prim') return [n];
  if (n.k === 'not') return allPrims(n.a);
  return [...allPrims(n.a), ...allPrims(n.b)];
}

const FIELD_OF: Record<KeyType, IndexField> = { mac: 'mac', vlan: 'vlan', ipv4: 'ip', ipv6: 'ip', port: 'port', proto: 'proto' };

function fieldsPresent(l: Lookup, have: ReadonlySet<IndexField>): boolean {
  if (l.op === 'key' || l.op === 'range') return have.has(FIELD_OF[l.type]);
  if (l.op === 'and' || l.op === 'or') return l.args.every((a) => fieldsPresent(a, have));
  return true;
}

/** Drops repeated operands (`port 80 or port 443` holds `port 0` twice). */
function unique(args: Lookup[]): Lookup[] {
  const seen = new Set<string>();
  return args.filter((a) => {
    const k = describePlan(a);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function and(args: Lookup[]): Lookup {
  const kept = unique(args.flatMap((a) => (a.op === 'and' ? a.args : a.op === 'all' ? [] : [a])));
  if (kept.length === 0) return ALL;
  return kept.length === 1 ? kept[0]! : { op: 'and', args: kept };
}

export function or(args: Lookup[]): Lookup {
  if (args.some((a) => a.op === 'all')) return ALL;
  const kept = unique(args.flatMap((a) => (a.op === 'or' ? a.args : [a])));
  return kept.length === 1 ? kept[0]! : { op: 'or', args: kept };
}

// Protocol names libpcap takes as `proto` values / stand-alone keywords, with their numbers. The
// IPv6 extension headers (and AH/ESP) are left out: a packet's index holds the upper-layer header
// after them, not what libpcap's `ip6 proto N` tests.
const PROTO_NUM: Record<string, number> = { icmp: 1, igmp: 2, tcp: 6, udp: 17, icmp6: 58, sctp: 132, pim: 103, vrrp: 112 };
const EXT_HEADERS = new Set([0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254]);

function key(type: KeyType, bytes: number[] | Buffer): Lookup {
  return { op: 'key', type, value: Buffer.from(bytes) };
}

/** One primitive's lookup; ALL for anything not understood. */
function primitive(words: string[]): Lookup {
  let j = 0;
  let proto: string | undefined;
  let dir = false;
  let type: string | undefined;
  if (PROTOS.has(words[j]!)) proto = words[j++];
  if (DIRS.has(words[j] ?? '')) {
    dir = true;
    j++;
    if ((words[j] === 'or' || words[j] === 'and') && DIRS.has(words[j + 1] ?? '')) j += 2;
  }
  if (TYPES.has(words[j] ?? '')) type = words[j++];
  const rest = words.slice(j);

  if (words.length === 1 && words[0]! in PROTO_NUM) return key('proto', [PROTO_NUM[words[0]!]!]);
  if (words[0] === 'vlan') {
    if (words.length === 1) return { op: 'range', type: 'vlan', lo: Buffer.from([0, 0]), hi: Buffer.from([0x0f, 0xff]) };
    const id = num(words[1]!);
    if (words.length === 2 && id !== undefined && id < 4096) return key('vlan', [id >> 8, id & 0xff]);
    return ALL;
  }
  if (rest.length === 0) return ALL;

  if (proto === 'ether') {
    if ((type === undefined || type === 'host') && rest.length === 1) {
      const mac = parseMac(rest[0]!);
      return mac ? key('mac', mac) : ALL;
    }
    return ALL;
  }
  if (type === 'proto') {
    if (dir || rest.length !== 1 || !(proto === undefined || proto === 'ip' || proto === 'ip6')) return ALL;
    const v = rest[0]!.replace(/^\\/, '');
    const n = num(v) ?? PROTO_NUM[v];
    if (n === undefined || n > 255 || EXT_HEADERS.has(n)) return ALL;
    return key('proto', [n]);
  }
  if (type === 'port' || type === 'portrange') {
    if (rest.length !== 1 || !(proto === undefined || proto === 'tcp' || proto === 'udp' || proto === 'sctp')) return ALL;
    let l: Lookup;
    if (type === 'port') {
      const p = num(rest[0]!);
      if (p === undefined || p > 65535) return ALL;
      l = key('port', [p >> 8, p & 0xff]);
    } else {
      const m = /^([0-9]+)-([0-9]+)$/.exec(rest[0]!);
      if (!m) return ALL;
      let a = Number(m[1]);
      let b = Number(m[2]);
      if (a > b) [a, b] = [b, a];
      if (b > 65535) return ALL;
      l = { op: 'range', type: 'port', lo: Buffer.from([a >> 8, a & 0xff]), hi: Buffer.from([b >> 8, b & 0xff]) };
    }
    // Port 0 holds the later fragments whose first fragment the builder did not hold (it came in
    // another file, or was pushed out of the builder's table): qe-extract may still keep them.
    l = or([l, key('port', [0, 0])]);
    return proto ? and([l, key('proto', [PROTO_NUM[proto]!])]) : l;
  }
  if (type === 'host' || type === 'net' || (type === undefined && (dir || proto === 'ip' || proto === 'ip6' || proto === 'arp' || proto === 'rarp' || proto === undefined))) {
    if (rest.length === 3 && type === 'net' && rest[1] === 'mask') {
      const a = parseV4(rest[0]!, false);
      const m = parseV4(rest[2]!, false);
      if (!a || !m || !(proto === undefined || proto === 'ip' || proto === 'arp' || proto === 'rarp')) return ALL;
      return v4Range(a, m);
    }
    if (rest.length !== 1) return ALL;
    const v = rest[0]!;
    const slash = v.indexOf('/');
    const addr = slash >= 0 ? v.slice(0, slash) : v;
    const len = slash >= 0 ? Number(v.slice(slash + 1)) : undefined;
    if (addr.includes(':')) {
      if (!(proto === undefined || proto === 'ip6')) return ALL;
      const a = parseV6(addr);
      if (!a) return ALL;
      const l = len ?? 128;
      if (l > 128 || (len !== undefined && type !== 'net')) return ALL;
      return l === 128 ? key('ipv6', a) : prefixRange('ipv6', a, l);
    }
    if (!(proto === undefined || proto === 'ip' || proto === 'arp' || proto === 'rarp')) return ALL;
    if (type === 'net') {
      const parts = addr.split('.');
      const a = parseV4(addr, true);
      if (!a) return ALL;
      const l = len ?? parts.length * 8;
      if (l > 32) return ALL;
      return l === 32 ? key('ipv4', a) : prefixRange('ipv4', a, l);
    }
    if (len !== undefined) return ALL;
    const a = parseV4(addr, false);
    return a ? key('ipv4', a) : ALL; // a name: resolved by libpcap, unknown here
  }
  return ALL;
}

function num(s: string): number | undefined {
  if (/^[0-9]+$/.test(s)) return Number(s);
  if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  return undefined;
}

function parseV4(s: string, partial: boolean): number[] | undefined {
  const parts = s.split('.');
  if (parts.length > 4 || (!partial && parts.length !== 4)) return undefined;
  const out = parts.map((p) => (/^[0-9]{1,3}$/.test(p) ? Number(p) : NaN));
  if (out.some((n) => !(n >= 0 && n <= 255))) return undefined;
  while (out.length < 4) out.push(0);
  return out;
}

function parseV6(s: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (g.includes('.')) {
        const v4 = parseV4(g, false);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else return undefined;
    }
    return out;
  };
  const a = groups(halves[0]!);
  const b = halves.length === 2 ? groups(halves[1]!) : [];
  if (!a || !b) return undefined;
  const fill = 8 - a.length - b.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...a, ...new Array<number>(fill).fill(0), ...b];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

function parseMac(s: string): number[] | undefined {
  let hex: string;
  if (/^[0-9a-fA-F]{1,2}([:\-.][0-9a-fA-F]{1,2}){5}$/.test(s)) hex = s.split(/[:\-.]/).map((p) => p.padStart(2, '0')).join('');
  else if (/^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}$/.test(s)) hex = s.replace(/\./g, '');
  else return undefined;
  return [...Buffer.from(hex, 'hex')];
}

function prefixRange(type: 'ipv4' | 'ipv6', addr: number[], len: number): Lookup {
  const lo = Buffer.from(addr);
  const hi = Buffer.from(addr);
  for (let bit = len; bit < lo.length * 8; bit++) {
    const byte = bit >> 3;
    const m = 0x80 >> (bit & 7);
    lo[byte]! &= ~m;
    hi[byte]! |= m;
  }
  return { op: 'range', type, lo, hi };
}

function v4Range(addr: number[], mask: number[]): Lookup {
  // A non-contiguous mask is legal in libpcap: the range of the leading ones still holds every match.
  let len = 0;
  while (len < 32 && mask[len >> 3]! & (0x80 >> (len & 7))) len++;
  return len === 32 ? key('ipv4', addr.map((b, i) => b & mask[i]!)) : prefixRange('ipv4', addr, len);
}

/** The index fields a plan needs. */
export function fieldsNeeded(l: Lookup): Set<IndexField> {
  const out = new Set<IndexField>();
  const walk = (x: Lookup) => {
    if (x.op === 'key' || x.op === 'range') out.add(FIELD_OF[x.type]);
    else if (x.op === 'and' || x.op === 'or') x.args.forEach(walk);
  };
  walk(l);
  return out;
}

/** A plan as text, for --explain. */
export function describePlan(l: Lookup): string {
  switch (l.op) {
    case 'all':
      return 'ALL (no narrowing)';
    case 'key':
      return `${l.type} ${showValue(l.type, l.value)}`;
    case 'range':
      return `${l.type} ${showValue(l.type, l.lo)}..${showValue(l.type, l.hi)}`;
    case 'and':
    case 'or':
      return `(${l.args.map(describePlan).join(` ${l.op} `)})`;
  }
}

function showValue(type: KeyType, v: Buffer): string {
  switch (type) {
    case 'ipv4':
      return [...v].join('.');
    case 'ipv6':
      return Array.from({ length: 8 }, (_, i) => v.readUInt16BE(i * 2).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
    case 'mac':
      return [...v].map((b) => b.toString(16).padStart(2, '0')).join(':');
    default:
      return String(v.readUIntBE(0, v.length));
  }
}

export { IDX_FIELDS };
