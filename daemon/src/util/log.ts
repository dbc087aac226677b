// Log lines for people and journald: "<level> <message>" on stderr, one line each.
export type Level = 'info' | 'warn' | 'error';

let quiet = false;
export function setQuiet(q: boolean): void {
  quiet = q;
}

export function log(level: Level, message: string): void {
  if (quiet && level === 'info') return;
  process.stderr.write(`${level === 'info' ? '' : `${level}: `}${message}\n`);
}
