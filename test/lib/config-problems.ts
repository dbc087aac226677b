// The problems the config parser reports for a config text (it must refuse it).
import { expect } from 'vitest';
import { ConfigError } from '../../daemon/src/config/errors.js';
import { parseConfigText } from '../../daemon/src/config/load.js';

export function problems(text: string) {
  try {
    parseConfigText(text, 'c.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}
