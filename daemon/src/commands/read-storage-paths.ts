// The one piece of configuration extraction needs: where the store is. Kept apart so the daemon's
// config loader can take its place without touching the command.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export const DEFAULT_CONFIG_PATH = '/etc/qe-packets/config.yaml';

export class ConfigError extends Error {}

export function readStoragePaths(configPath: string): string[] {
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : (e as Error).message;
    throw new ConfigError(`config file ${configPath} ${why}: pass --config PATH`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${configPath} is not valid YAML: ${(e as Error).message}`);
  }
  const storage = (doc as { storage?: unknown } | null)?.storage;
  const paths = (storage as { paths?: unknown } | null | undefined)?.paths;
  if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string' && p !== '')) {
    throw new ConfigError(
      `storage.paths in ${configPath} must be a non-empty list of directories (e.g. storage: { paths: [/var/lib/qe-packets/store] }), got ${JSON.stringify(paths ?? null)}`,
    );
  }
  return paths as string[];
}
