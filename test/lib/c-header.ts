// Reads the constants of the C headers that fix an on-disk format (index-format.h, flow-format.h),
// for the tests that hold their TypeScript copies to them.

export type Value = number | string;

/** A C constant expression of a header: integers with u suffixes, shifts, ors, or a string. */
export function cValue(expr: string): Value {
  const e = expr.replace(/\/\*.*?\*\//g, '').trim();
  if (e.startsWith('"')) return JSON.parse(e.replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1')) as string;
  const js = e.replace(/\b(0x[0-9a-fA-F]+|\d+)u\b/g, '$1');
  if (!/^[\d\sxa-fA-F()<|+-]+$/.test(js)) throw new Error(`not a constant expression: ${expr}`);
  return Function(`return (${js}) >>> 0`)() as number;
}

/** name -> value of every #define and enum member (include guard left out). */
export function headerConstants(text: string): Map<string, Value> {
  const out = new Map<string, Value>();
  const noComments = text.replace(/\/\*[\s\S]*?\*\//g, (c) => (c.includes('\n') ? '\n' : ''));
  for (const m of noComments.matchAll(/^#define[ \t]+(QE_\w+)[ \t]+(.+)$/gm)) out.set(m[1]!, cValue(m[2]!));
  for (const body of noComments.matchAll(/enum\s+\w+\s*\{([^}]*)\}/g))
    for (const m of body[1]!.matchAll(/(QE_\w+)\s*=\s*([^,]+),/g)) out.set(m[1]!, cValue(m[2]!));
  return out;
}

export const camel = (s: string) => s.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
