#!/usr/bin/env node
// Bundles the browser console (console/) into build/console/: one index.html naming content-hashed
// files, so the daemon can let browsers cache every file but index.html for good. Nothing inline
// (the daemon's Content-Security-Policy is `default-src 'self'`) and nothing fetched from the
// internet at run time: preact, htm and uPlot are bundled in.
//   node scripts/build-console.mjs
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'console');
const out = join(root, 'build', 'console');

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

const result = await build({
  entryPoints: [join(src, 'src', 'main.ts')],
  bundle: true,
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: true,
  outdir: out,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'eof',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const pick = (ext) => {
  const found = outputs.filter((f) => f.startsWith('main-') && f.endsWith(ext));
  if (found.length !== 1) throw new Error(`build/console: expected one main-*${ext} from esbuild, got ${JSON.stringify(outputs)}`);
  return found[0];
};

/** Copies a file under a name carrying its content hash, as esbuild names its outputs. */
async function hashed(file) {
  const data = await readFile(join(src, file));
  const hash = createHash('sha256').update(data).digest('base64url').slice(0, 10).toUpperCase();
  const name = `${basename(file, extname(file))}-${hash}${extname(file)}`;
  await writeFile(join(out, name), data);
  return name;
}

const html = (await readFile(join(src, 'index.html'), 'utf8'))
  .replace('{{script}}', `/${pick('.js')}`)
  .replace('{{style}}', `/${pick('.css')}`)
  .replace('{{icon}}', `/${await hashed('favicon.svg')}`);
if (/\{\{\w+\}\}/.test(html)) throw new Error(`console/index.html: unknown placeholder ${html.match(/\{\{\w+\}\}/)[0]}`);
if (/<script(?![^>]*\bsrc=)|<style|\son\w+=|style=/i.test(html)) throw new Error('console/index.html: inline script or style, which the Content-Security-Policy refuses');
await writeFile(join(out, 'index.html'), html);
