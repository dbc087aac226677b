// The image build takes its Debian mirror from this machine's apt sources (image/src/config.ts).
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMirrors } from '../image/src/config.js';

const dirs: string[] = [];
function aptDir(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'qe-apt-'));
  dirs.push(d);
  mkdirSync(join(d, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('findMirrors', () => {
  it('reads deb822 sources, skipping other suites and deb-src', () => {
    const d = aptDir({
      'sources.list.d/other.sources': 'Types: deb\nURIs: https://example.org/apt\nSuites: nodistro\nComponents: main\n',
      'sources.list.d/debian.sources':
        'Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n' +
        'Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n' +
        'Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n',
    });
    expect(findMirrors(d)).toEqual({ debian: 'http://mirror.example/debian', security: 'http://mirror.example/debian-security' });
  });

  it('reads one-line sources with options', () => {
    const d = aptDir({ 'sources.list': '# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n' });
    expect(findMirrors(d)).toEqual({ debian: 'http://m.example/debian', security: 'http://deb.debian.org/debian-security' });
  });

  it('names the fix when no bookworm source exists', () => {
    const d = aptDir({ 'sources.list': 'deb http://m.example/debian trixie main\n' });
    const saved = process.env.QE_IMAGE_MIRROR;
    delete process.env.QE_IMAGE_MIRROR;
    try {
      expect(() => findMirrors(d)).toThrow(/no apt source for Debian bookworm .*QE_IMAGE_MIRROR/);
    } finally {
      if (saved !== undefined) process.env.QE_IMAGE_MIRROR = saved;
    }
  });
});
