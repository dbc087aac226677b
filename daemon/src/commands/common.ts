// What every command shares: reading its config and turning config problems into exit code 2.
import { DEFAULT_CONFIG_PATH, type Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';

export const EXIT = { ok: 0, failure: 1, config: 2 } as const;

export async function loadConfigOrReport(path: string | undefined): Promise<Config | undefined> {
  try {
    return await loadConfigFile(path ?? DEFAULT_CONFIG_PATH);
  } catch (e) {
    reportError(e);
    return undefined;
  }
}

export function reportError(e: unknown): void {
  if (e instanceof ConfigError) process.stderr.write(`error: invalid configuration\n${e.message}\n`);
  else process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
}
