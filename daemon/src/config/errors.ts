// One shape for every configuration problem: which key, what value, what is wrong, how to fix it.
export interface ConfigProblem {
  key: string;
  value?: unknown;
  message: string;
  fix: string;
}

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(problems.map((p) => formatProblem(source, p)).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(source: string, p: ConfigProblem): string {
  const value = p.value === undefined ? '' : ` = ${JSON.stringify(p.value)}`;
  return `${source}: ${p.key}${value}: ${p.message}\n  fix: ${p.fix}`;
}
