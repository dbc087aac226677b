// Build step: publishes the configuration schema as JSON Schema for editors.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/native.js';
import { configJsonSchema } from './schema.js';

const text = `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
mkdirSync(join(packageRoot, 'build'), { recursive: true });
writeFileSync(join(packageRoot, 'build', 'config.schema.json'), text);
writeFileSync(join(packageRoot, 'docs', 'config.schema.json'), text);
