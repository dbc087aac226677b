// What the schema knows at each place of a config file: the keys an object there takes (for "did
// you mean"), the fix for a bad value there, and every key with its default (for the copies of the
// key list in README, package and Ansible). All read from configSchema, never listed by hand.
import type { z } from 'zod';
import { configFixes, configSchema } from './schema.js';

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; options?: z.ZodType[]; element?: z.ZodType; shape?: Record<string, z.ZodType> };
const defOf = (s: z.ZodType) => s.def as unknown as Def;

/** The schema itself and every schema it wraps (default, optional, …), outermost first. */
function layers(s: z.ZodType): z.ZodType[] {
  const d = defOf(s);
  const inner = d.innerType ?? (d.type === 'pipe' ? d.in : undefined);
  return inner ? [s, ...layers(inner)] : [s];
}

/** The schemas a value at `path` may be checked against: a union on the way gives one per option. */
function schemasAt(path: readonly PropertyKey[], from: z.ZodType = configSchema): z.ZodType[] {
  if (!path.length) return [from];
  const [head, ...rest] = path;
  return options(from).flatMap((s) => {
    const d = defOf(layers(s).at(-1)!);
    if (d.type === 'object' && typeof head === 'string' && d.shape![head]) return schemasAt(rest, d.shape![head]);
    if (d.type === 'array' && typeof head === 'number') return schemasAt(rest, d.element!);
    return [];
  });
}

/** A union's options (each unwrapped the same way), or the schema itself. */
function options(s: z.ZodType): z.ZodType[] {
  const d = defOf(layers(s).at(-1)!);
  return d.type === 'union' ? d.options!.flatMap(options) : [s];
}

function fixOf(s: z.ZodType): string | undefined {
  for (const layer of layers(s)) {
    const fix = configFixes.get(layer)?.fix;
    if (fix) return fix;
  }
  const d = defOf(layers(s).at(-1)!);
  return d.type === 'union' ? d.options!.map(fixOf).find(Boolean) : undefined;
}

/** The keys an object at `path` takes, e.g. ['capture', 'interfaces', 0] → ['name', 'buffer']. */
export function knownKeysAt(path: readonly PropertyKey[]): string[] {
  const keys = schemasAt(path)
    .flatMap(options)
    .map((s) => defOf(layers(s).at(-1)!))
    .filter((d) => d.type === 'object')
    .flatMap((d) => Object.keys(d.shape!));
  return [...new Set(keys)];
}

/** The fix written next to the key at `path` in the schema, if any. */
export function fixAt(path: readonly PropertyKey[]): string | undefined {
  const fix = schemasAt(path).map(fixOf).find(Boolean);
  if (fix) return fix;
  const keys = knownKeysAt(path);
  if (keys.length) return `write a mapping of ${keys.join(', ')}`;
  // A bad element of a list: the fix of the list.
  const i = path.map((p) => typeof p).lastIndexOf('number');
  return i >= 0 ? fixAt(path.slice(0, i)) : undefined;
}

/** 'capture.interfaces[0].buffer' → ['capture', 'interfaces', 0, 'buffer']. */
export function parseKeyPath(key: string): PropertyKey[] {
  return [...key.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] === undefined ? m[1]! : Number(m[2])));
}

/** Every key of every section, dotted ('storage.file_size', 'api.tls.cert'), and each top-level list
 *  ('elements'), with its default (null: none). */
export function configKeyDefaults(): Map<string, unknown> {
  const defaults = configSchema.parse({}) as unknown as Record<string, Record<string, unknown>>;
  const out = new Map<string, unknown>();
  // A key whose value is a mapping of its own (api.tls) is listed by its leaves: api.tls.cert.
  const walk = (path: string[], value: Record<string, unknown> | undefined) => {
    for (const key of knownKeysAt(path)) {
      const at = [...path, key];
      if (path.length > 0 && knownKeysAt(at).length) walk(at, value?.[key] as Record<string, unknown> | undefined);
      else if (path.length > 0) out.set(at.join('.'), value?.[key] ?? null);
      // A top-level list (elements) is one key: its entries' keys are documented with it.
      else if (!knownKeysAt(at).length) out.set(key, value?.[key] ?? null);
      else walk(at, value?.[key] as Record<string, unknown> | undefined);
    }
  };
  walk([], defaults);
  return out;
}
