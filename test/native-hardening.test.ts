// The native tools parse hostile files (qe-capture with CAP_NET_RAW): they are built with every
// warning an error and with the toolchain's hardening, checked here on the binaries themselves.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NATIVE_TOOLS } from '../package/src/stage.js';
import { root } from './lib/cli.js';

const native = join(root, 'build', 'native');
const tools = readdirSync(native).filter((f) => f.startsWith('qe-'));
const readelf = (args: string[], file: string) => execFileSync('readelf', [...args, file], { encoding: 'utf8' });

describe('the native build', () => {
  it('builds every tool the package ships, and no other', () => {
    expect(tools.sort()).toEqual([...NATIVE_TOOLS].sort());
  });

  it('compiles with warnings as errors, fortify, the stack protector and PIE, and links with full RELRO', () => {
    const commands = execFileSync('make', ['-n', '-B', '-C', join(root, 'daemon', 'native')], { encoding: 'utf8' });
    const compiles = commands.split('\n').filter((l) => /\b(cc|gcc|clang)\b.* -o /.test(l));
    expect(compiles.length).toBeGreaterThanOrEqual(tools.length);
    for (const line of compiles) {
      for (const flag of ['-Wall', '-Wextra', '-Werror', '-D_FORTIFY_SOURCE=2', '-O2', '-fstack-protector-strong', '-fPIE']) {
        expect(line.split(/\s+/), `${flag} in: ${line}`).toContain(flag);
      }
    }
    for (const line of compiles.filter((l) => !l.includes(' -c '))) {
      for (const flag of ['-pie', '-Wl,-z,relro,-z,now']) expect(line.split(/\s+/), `${flag} in: ${line}`).toContain(flag);
    }
  });

  it.each(tools)('%s is a PIE with full RELRO, a stack protector and fortified calls', (tool) => {
    const file = join(native, tool);
    expect(readelf(['-h'], file)).toMatch(/Type:\s+DYN \(Position-Independent Executable/);
    const dynamic = readelf(['-d'], file);
    expect(dynamic).toMatch(/\(FLAGS\)\s+BIND_NOW/);
    expect(dynamic).toMatch(/\(FLAGS_1\)\s+Flags: NOW PIE/);
    expect(readelf(['-lW'], file)).toMatch(/^\s*GNU_RELRO\s/m);
    const symbols = readelf(['--dyn-syms', '-W'], file);
    expect(symbols).toMatch(/\b__stack_chk_fail@/);
    expect(symbols).toMatch(/\b__\w+_chk@/);
  });

  it.each(tools)('hardening-check (devscripts) passes %s', (tool) => {
    // installed by scripts/install-deps. Control-flow protection (CET) is not asked of the build;
    // everything else must be found, or it exits non-zero.
    const out = execFileSync('hardening-check', ['--nocfprotection', join(native, tool)], { encoding: 'utf8' });
    for (const check of ['Position Independent Executable', 'Stack protected', 'Fortify Source functions', 'Read-only relocations', 'Immediate binding']) {
      expect(out, out).toMatch(new RegExp(`${check}: yes`));
    }
  });
});
