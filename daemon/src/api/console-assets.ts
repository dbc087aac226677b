// The browser console's static files (build/console/, made by scripts/build-console.mjs), served by
// the API server for every path outside /api/. The bundle is small and changes only with the
// package, so it is read once into memory: a request can only ever get one of the files listed at
// start, whatever its path says.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** Same origin only, no inline script or style, no framing: the console needs nothing more. */
export const CONSOLE_CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), usb=(), serial=()',
};

interface Asset {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
  cache: string;
}

// esbuild's [name]-[hash] and the build script's names: the hash is what makes caching for good safe.
const HASHED = /-[A-Z0-9]{8,}\.[a-z0-9]+$/;

function loadAssets(root: string): Map<string, Asset> {
  if (!existsSync(join(root, 'index.html')))
    throw new Error(`console: ${join(root, 'index.html')} is missing: run \`npm run build\` (it bundles console/ into build/console/)`);
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(root)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(root, name));
    const zipped = /^(text|application\/json|image\/svg)/.test(type) && body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined;
    assets.set(`/${name}`, {
      body,
      gzip: zipped && zipped.length < body.length ? zipped : undefined,
      type,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      // index.html names the current bundle, so it is checked at every load; the rest never changes under its name.
      cache: HASHED.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
  }
  assets.set('/', assets.get('/index.html')!);
  return assets;
}

function refuse(res: ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
  res.end(`${JSON.stringify({ error: { code, message } })}\n`);
}

/**
 * A handler for the console's files under root (build/console). Returns true when it answered:
 * `/`, `/index.html` and the bundle's files (GET and HEAD; other methods get a 405), and paths
 * that try to leave the directory (400). Anything else is left to the caller (false).
 */
export function consoleHandler(root: string): (req: IncomingMessage, res: ServerResponse) => boolean {
  const assets = loadAssets(root);
  return (req, res) => {
    const raw = (req.url ?? '/').split('?')[0]!.split('#')[0]!;
    let path: string;
    try {
      path = decodeURIComponent(raw);
    } catch {
      refuse(res, 400, 'bad_path', `path ${JSON.stringify(raw)} is not valid percent-encoding`);
      return true;
    }
    // Only names listed at start are ever read, so this cannot reach a file; it is answered
    // plainly so a probe is not mistaken for a missing page.
    if (path.includes('\0') || path.includes('\\') || path.split('/').some((s) => s === '..' || s === '.')) {
      refuse(res, 400, 'bad_path', `path ${JSON.stringify(raw)} leaves the console's directory: ask for / or a file it names`);
      return true;
    }
    const asset = assets.get(path);
    if (!asset) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      refuse(res, 405, 'method_not_allowed', `${req.method} ${path}: the console's files are read with GET`, { allow: 'GET, HEAD' });
      return true;
    }
    const headers: Record<string, string | number> = {
      ...SECURITY_HEADERS,
      'content-type': asset.type,
      'cache-control': asset.cache,
      etag: asset.etag,
      vary: 'accept-encoding',
    };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers).end();
      return true;
    }
    const gzip = asset.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? asset.gzip! : asset.body;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = body.length;
    res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
