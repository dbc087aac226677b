// Log lines for people and journald: "<level> <message>" on stderr, one line each.
export type Level = 'info' | 'warn' | 'error';

export function log(level: Level, message: string): void {
  process.stderr.write(`${level === 'info' ? '' : `${level}: `}${message}\n`);
}
