// JSON with bigint timestamps written as decimal strings (they do not fit a JavaScript number).
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}
