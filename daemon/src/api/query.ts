// The API's query parameters are the CLI's flags: `?from=X&filter=Y&iface=a,b` becomes
// `--from=X --filter=Y --iface=a,b` and is parsed by the command's own parser, so a request means
// what the command means and a mistake gets the command's words. Times without a zone are UTC
// here (a browser has no say in the appliance's TZ).
import type { RouteSpec, QueryParam } from './types.js';

export class QueryError extends Error {}

/** The query's parameters checked against the route: no unknown one, none twice (iface may repeat). */
export function queryParams(url: URL, route: RouteSpec): Map<QueryParam, string[]> {
  const out = new Map<QueryParam, string[]>();
  for (const [k, v] of url.searchParams) {
    if (!(route.query as readonly string[]).includes(k))
      throw new QueryError(`unknown parameter ${JSON.stringify(k)}: ${route.query.length ? `this endpoint takes ${route.query.join(', ')}` : 'this endpoint takes none'}`);
    const list = out.get(k as QueryParam) ?? [];
    if (list.length && k !== 'iface') throw new QueryError(`parameter ${k} given twice: give it once`);
    list.push(v);
    out.set(k as QueryParam, list);
  }
  return out;
}

/** The flags of the CLI command for these parameters (`--name=value`: a value may start with a dash). */
export function asFlags(params: Map<QueryParam, string[]>, skip: readonly QueryParam[] = []): string[] {
  const argv: string[] = [];
  for (const [k, values] of params) if (!skip.includes(k)) for (const v of values) argv.push(`--${k}=${v}`);
  return argv;
}
