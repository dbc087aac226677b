// The config keys exist in one definition (daemon/src/config/schema.ts); README's table, the JSON
// Schema, the package's default config.yaml and the Ansible template are copies people read or
// install. Each must name exactly the schema's keys with the schema's defaults, and a drifted copy
// must be caught (the "drifted" cases feed each reader a copy with one key changed).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configKeyDefaults } from '../daemon/src/config/keys.js';
import { configJsonSchema } from '../daemon/src/config/schema.js';
import { root, tempDir } from './lib/cli.js';

type Keys = Map<string, unknown>;
const read = (...p: string[]) => readFile(join(root, ...p), 'utf8');

/** Differences between the schema's keys and defaults and a copy's, one line each. */
function drift(copy: Keys): string[] {
  const schema = configKeyDefaults();
  const out: string[] = [];
  for (const [k, v] of schema) {
    if (!copy.has(k)) out.push(`${k}: missing`);
    else if (JSON.stringify(copy.get(k) ?? null) !== JSON.stringify(v)) out.push(`${k}: default ${JSON.stringify(copy.get(k))}, schema says ${JSON.stringify(v)}`);
  }
  for (const k of copy.keys()) if (!schema.has(k)) out.push(`${k}: not in the schema`);
  return out;
}

/** A key whose value is a mapping (api.tls) is named by its leaves (api.tls.cert); lists stay values. */
const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function flatten(doc: Record<string, Record<string, unknown> | null>): Keys {
  const out: Keys = new Map();
  const walk = (prefix: string, obj: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(obj)) {
      if (isMapping(v)) walk(`${prefix}${k}.`, v);
      else out.set(`${prefix}${k}`, v);
    }
  };
  // A top-level list (elements) is one key, as the schema lists it.
  for (const [section, keys] of Object.entries(doc ?? {})) if (Array.isArray(keys)) out.set(section, keys);
  else walk(`${section}.`, keys ?? {});
  return out;
}

/** README's table under "## Configuration": | `section.key` (or `list`) | `default` or none | meaning |. */
function readmeKeys(readme: string): Keys {
  const start = readme.indexOf('\n## Configuration\n');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const out: Keys = new Map();
  // A top-level list (elements) has no dot: its default cell is a list, which tells its row from other tables'.
  for (const m of section.matchAll(/^\| `([a-z_]+(?:\.[a-z_]+)+|[a-z_]+(?=` \| `\[))` \| ([^|]+) \|/gm)) {
    const cell = m[2]!.trim();
    out.set(m[1]!, cell === 'none' ? null : parse(cell.replace(/^`(.*)`$/, '$1')));
  }
  return out;
}

type SchemaNode = { type?: string; properties?: Record<string, SchemaNode>; default?: unknown };

function jsonSchemaKeys(schema: { properties: Record<string, SchemaNode> }): Keys {
  const out: Keys = new Map();
  const walk = (prefix: string, node: SchemaNode) => {
    for (const [k, v] of Object.entries(node.properties ?? {})) {
      if (v.properties) walk(`${prefix}${k}.`, v);
      else out.set(`${prefix}${k}`, v.default ?? null);
    }
  };
  for (const [section, s] of Object.entries(schema.properties)) if (s.type === 'array') out.set(section, s.default ?? null);
  else walk(`${section}.`, s);
  return out;
}

/** The package's config.yaml with every commented-out `key: value` line taken as written. */
function packageKeys(text: string): Keys {
  return flatten(parse(text.replace(/^(\s*)# ?(\s*[a-z_]+:.*)$/gm, '$1$2')));
}

/** The Ansible template rendered by Ansible itself with the role's defaults. */
async function ansibleKeys(template: string, defaults: string): Promise<Keys> {
  const dest = join(await tempDir(), 'config.yaml');
  await execa('ansible', ['localhost', '-i', 'localhost,', '-c', 'local', '-m', 'template', '-a', `src=${template} dest=${dest}`, '-e', `@${defaults}`], { env: { ANSIBLE_NOCOLOR: '1' } });
  return flatten(parse(await readFile(dest, 'utf8')));
}

const role = join(root, 'ansible', 'roles', 'qe_packets');

describe('every copy of the config keys names exactly the schema keys, with its defaults', () => {
  it('the schema has keys in every section (the reference the copies are held to)', () => {
    expect([...configKeyDefaults().keys()]).toEqual(expect.arrayContaining(['capture.interfaces', 'storage.fsync', 'metrics.listen', 'control.socket', 'health.window', 'api.listen', 'api.tls.cert', 'api.max_extractions', 'elements']));
    expect(configKeyDefaults().get('elements')).toEqual([]);
    expect(configKeyDefaults().get('storage.file_size')).toBe('1GiB');
  });
  it("README's configuration table", async () => {
    expect(drift(readmeKeys(await read('README.md')))).toEqual([]);
  });
  it('the JSON Schema in docs/ and the build', async () => {
    expect(drift(jsonSchemaKeys(configJsonSchema() as never))).toEqual([]);
    expect(JSON.parse(await read('docs', 'config.schema.json'))).toEqual(configJsonSchema());
    expect(JSON.parse(await read('build', 'config.schema.json'))).toEqual(configJsonSchema());
  });
  it("the package's default config.yaml", async () => {
    expect(drift(packageKeys(await read('package', 'debian', 'config.yaml')))).toEqual([]);
  });
  it('the Ansible template, rendered by Ansible with the role defaults', async () => {
    expect(drift(await ansibleKeys(join(role, 'templates', 'config.yaml.j2'), join(role, 'defaults', 'main.yml')))).toEqual([]);
  }, 60_000);
});

describe('a drifted copy is caught', () => {
  it('README: a key dropped, a default changed, a key the schema lacks', async () => {
    const readme = (await read('README.md'))
      .replace(/^\| `health\.window` .*\n/m, '')
      .replace('| `storage.file_size` | `1GiB` |', '| `storage.file_size` | `2GiB` |')
      .replace(/^(\| `control\.socket` .*\n)/m, '$1| `control.mode` | `0660` | x |\n')
      .replace(/^\| `elements` .*\n/m, '');
    expect(drift(readmeKeys(readme))).toEqual(['storage.file_size: default "2GiB", schema says "1GiB"', 'health.window: missing', 'elements: missing', 'control.mode: not in the schema']);
  });
  it('JSON Schema: a stale copy without a key', () => {
    const stale = structuredClone(configJsonSchema()) as { properties: { health: { properties: Record<string, unknown> } } };
    delete stale.properties.health.properties.store_full_warning;
    expect(drift(jsonSchemaKeys(stale as never))).toEqual(['health.store_full_warning: missing']);
  });
  it('package config.yaml: a key left out and a commented default that differs', async () => {
    const text = (await read('package', 'debian', 'config.yaml')).replace(/^.*rescan_interval.*\n/m, '').replace('# snaplen: 262144', '# snaplen: 65535');
    expect(drift(packageKeys(text))).toEqual(['capture.snaplen: default 65535, schema says 262144', 'storage.rescan_interval: missing']);
  });
  it('Ansible: a template line dropped and a role default that differs', async () => {
    const dir = await tempDir();
    const template = (await read('ansible', 'roles', 'qe_packets', 'templates', 'config.yaml.j2')).replace(/^.*fsync.*\n/m, '');
    const defaults = (await read('ansible', 'roles', 'qe_packets', 'defaults', 'main.yml')).replace('qe_packets_flush_interval: 1s', 'qe_packets_flush_interval: 2s');
    await writeFile(join(dir, 't.j2'), template);
    await writeFile(join(dir, 'd.yml'), defaults);
    expect(drift(await ansibleKeys(join(dir, 't.j2'), join(dir, 'd.yml')))).toEqual(['storage.flush_interval: default "2s", schema says "1s"', 'storage.fsync: missing']);
  }, 60_000);
});
