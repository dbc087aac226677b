// Writes the storage: section of the daemon's config. The file is edited through yaml's Document
// API, so comments, key order and every other section survive; the result is validated with the
// daemon's own schema before it is written.
import { readFile } from 'node:fs/promises';
import { Document, isMap, parseDocument } from 'yaml';
import { ConfigError } from '../config/errors.js';
import { parseConfigText } from '../config/load.js';
import { writeFileAtomic } from './write-file.js';

export interface StorageSettings {
  paths: string[];
  capacity: string;
  file_size: string;
  mode: 'circular' | 'linear';
}

/** The config text with its storage section set; throws ConfigError if the result is invalid. */
export function setStorage(text: string, source: string, s: StorageSettings): string {
  const fresh = !text.trim() || parseDocument(text).contents === null;
  const doc = fresh ? new Document({}) : parseDocument(text);
  if (doc.errors.length) throw new ConfigError(source, doc.errors.map((e) => ({ key: '(YAML)', message: `does not parse: ${e.message.split('\n')[0]}`, fix: 'correct the YAML before provisioning writes to it' })));
  if (!isMap(doc.contents)) throw new ConfigError(source, [{ key: '(top level)', message: 'is not a mapping of sections', fix: 'make it capture: and storage: sections (see README.md)' }]);
  if (fresh) doc.commentBefore = ' Qe-Packets configuration (see README.md); the storage section is written by qe-packets provision storage';
  const set = (key: string, value: unknown) => {
    const cur = doc.getIn(['storage', key]);
    const same = Array.isArray(value) ? JSON.stringify((doc.getIn(['storage', key]) as { toJSON?: () => unknown })?.toJSON?.()) === JSON.stringify(value) : cur === value;
    if (same) return;
    doc.setIn(['storage', key], doc.createNode(value));
  };
  if (!doc.hasIn(['storage'])) doc.setIn(['storage'], doc.createNode({}));
  set('paths', s.paths);
  set('capacity', s.capacity);
  set('file_size', s.file_size);
  set('mode', s.mode);
  const out = doc.toString();
  parseConfigText(out, source);
  return out;
}

/** Sets the storage section of the config file; returns whether the file changed. */
export async function writeStorageConfig(path: string, s: StorageSettings): Promise<boolean> {
  let old = '';
  try {
    old = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const text = setStorage(old, path, s);
  if (text === old) return false;
  await writeFileAtomic(path, text);
  return true;
}
