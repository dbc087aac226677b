// Where the native tools live: build/native in a checkout, or QE_NATIVE_DIR (the .deb's libexec).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url)); // build/daemon/src/util/
export const nativeDir = process.env.QE_NATIVE_DIR ?? join(here, '..', '..', '..', 'native');
export const nativeTool = (name: 'qe-capture' | 'qe-extract') => join(nativeDir, name);
export const packageRoot = join(here, '..', '..', '..', '..');
