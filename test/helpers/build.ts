// Builds what the extract tests run: the native helpers and the compiled TypeScript.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const QE_EXTRACT = `${ROOT}build/native/qe-extract`;
export const RUN_EXTRACT = `${ROOT}test/helpers/run-extract.mjs`;

export function buildAll(): void {
  execFileSync('make', ['-s', '-C', 'daemon/native'], { cwd: ROOT, stdio: 'inherit' });
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
}
