// consoleHandler: the console's files as the API server hands them out (the server itself is
// test/console.test.ts's and the API's tests' subject).
import { request, createServer, type Server } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP, consoleHandler } from '../daemon/src/api/console-assets.js';
import { root as checkout, tempDir } from './lib/cli.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw request: the path goes out as written (fetch would resolve `..` before sending). */
function get(server: Server, path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function serve(dir: string): Promise<Server> {
  const handle = consoleHandler(dir);
  // What the API server does for a path the handler leaves: its own 404.
  const server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404).end('not the console');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

describe('consoleHandler', () => {
  let dir: string;
  let server: Server;
  const js = `console.log(${JSON.stringify('x'.repeat(4000))});\n`;

  beforeAll(async () => {
    const base = await tempDir('qe-console-');
    dir = join(base, 'console');
    await mkdir(dir);
    await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="/main-ABCD1234.js"></script>');
    await writeFile(join(dir, 'main-ABCD1234.js'), js);
    await writeFile(join(dir, 'main-ABCD1234.css'), 'body{color:red}');
    await writeFile(join(dir, 'favicon-QWERTY1234.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    // Beside the console's directory: what a traversal would be after.
    await writeFile(join(base, 'secret.txt'), 'token hashes');
    await writeFile(join(base, 'console-secret.txt'), 'token hashes');
    server = await serve(dir);
  });
  afterAll(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it('serves / as index.html with the CSP, the security headers and no caching', async () => {
    const res = await get(server, '/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toMatch(/^default-src 'self';/);
    expect(CONSOLE_CSP).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.body.toString()).toContain('/main-ABCD1234.js');
    expect((await get(server, '/index.html')).body).toEqual(res.body);
  });

  it('gives each file its content type, and hashed files immutable caching', async () => {
    const cases: [string, string][] = [
      ['/main-ABCD1234.js', 'text/javascript; charset=utf-8'],
      ['/main-ABCD1234.css', 'text/css; charset=utf-8'],
      ['/favicon-QWERTY1234.svg', 'image/svg+xml'],
    ];
    for (const [path, type] of cases) {
      const res = await get(server, path);
      expect(res.status, path).toBe(200);
      expect(res.headers['content-type'], path).toBe(type);
      expect(res.headers['cache-control'], path).toBe('public, max-age=31536000, immutable');
      expect(res.headers['content-security-policy'], path).toBe(CONSOLE_CSP);
    }
    expect((await get(server, '/main-ABCD1234.js')).body.toString()).toBe(js);
  });

  it('compresses for a client that takes gzip, and answers 304 to its ETag', async () => {
    const res = await get(server, '/main-ABCD1234.js', { headers: { 'accept-encoding': 'gzip, br' } });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.body).toString()).toBe(js);
    const again = await get(server, '/main-ABCD1234.js', { headers: { 'if-none-match': String(res.headers.etag) } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it('refuses paths that leave its directory, however they are written', async () => {
    for (const path of ['/../secret.txt', '/..%2fsecret.txt', '/%2e%2e/secret.txt', '/./index.html', '/..\\secret.txt', '/%2e%2e%5csecret.txt', '/index.html%00.js', '/%E0%A4%A']) {
      const res = await get(server, path);
      expect(res.status, path).toBe(400);
      expect(res.body.toString(), path).not.toContain('token hashes');
      expect(JSON.parse(res.body.toString()).error.code, path).toBe('bad_path');
    }
    // A name that is not the bundle's is the caller's to answer (the API server's 404).
    for (const path of ['/secret.txt', '/console-secret.txt', '/api/v1/status', '/nothing.js']) {
      const res = await get(server, path);
      expect(res.status, path).toBe(404);
      expect(res.body.toString(), path).toBe('not the console');
    }
  });

  it('is read-only: other methods on its files get a 405 naming GET', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await get(server, '/', { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD');
    }
    const head = await get(server, '/main-ABCD1234.js', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it('names the missing build and the fix when there is no console to serve', async () => {
    const empty = await tempDir('qe-console-none-');
    expect(() => consoleHandler(empty)).toThrow(`console: ${join(empty, 'index.html')} is missing: run \`npm run build\``);
  });
});

describe('the built console (npm run build)', () => {
  const built = join(checkout, 'build', 'console');

  it('is an index.html with no inline script or style, naming hashed files that are served', async () => {
    const index = await readFile(join(built, 'index.html'), 'utf8');
    expect(index).not.toMatch(/<script(?![^>]*\bsrc=)|<style|\son\w+=|\sstyle=/i);
    expect(index).not.toMatch(/https?:\/\//);
    const named = [...index.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(named.map((n) => n.replace(/-[A-Z0-9]{8,}\./, '-HASH.')).sort()).toEqual(['/favicon-HASH.svg', '/main-HASH.css', '/main-HASH.js']);
    const server = await serve(built);
    try {
      for (const path of named) {
        const res = await get(server, path);
        expect(res.status, path).toBe(200);
        expect(res.headers['cache-control'], path).toContain('immutable');
      }
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('loads nothing from the internet', async () => {
    const { readdir } = await import('node:fs/promises');
    for (const f of await readdir(built)) {
      if (!/\.(js|css|html)$/.test(f)) continue;
      const text = await readFile(join(built, f), 'utf8');
      // URLs in license comments and namespace URIs are text, not loads: look for fetches and imports.
      expect(text, f).not.toMatch(/(import\s*\(|from\s*|url\(|src=)["']?https?:/);
    }
  });
});
