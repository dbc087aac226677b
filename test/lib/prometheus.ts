// A real Prometheus server (Debian's package) scraping the daemon, for tests and benchmarks.
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { sleep } from './cli.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export class PrometheusServer {
  private proc?: ResultPromise;
  url = '';
  log = '';

  constructor(
    private readonly dir: string,
    private readonly target: string,
    private readonly ruleFiles: string[] = [],
  ) {}

  async start(): Promise<void> {
    const port = await freePort();
    const config = join(this.dir, 'prometheus.yml');
    await writeFile(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        ...(this.ruleFiles.length ? ['rule_files:', ...this.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
        'scrape_configs:',
        '  - job_name: qe-packets',
        '    static_configs:',
        `      - targets: [${JSON.stringify(this.target)}]`,
        '',
      ].join('\n'),
    );
    this.url = `http://127.0.0.1:${port}`;
    this.proc = execa('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(this.dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`], { reject: false, all: true, buffer: false });
    this.proc.all!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    const until = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`${this.url}/-/ready`).then((r) => r.ok, () => false);
      if (ok) return;
      if (Date.now() > until || this.proc.exitCode !== null) throw new Error(`prometheus did not start:\n${this.log}`);
      await sleep(200);
    }
  }

  /** An instant query; `time` in Unix seconds (default: now). */
  async query(expr: string, time?: number): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const params = new URLSearchParams({ query: expr, ...(time ? { time: String(time) } : {}) });
    const res = (await (await fetch(`${this.url}/api/v1/query?${params}`)).json()) as { status: string; error?: string; data: { result: never[] } };
    if (res.status !== 'success') throw new Error(`${expr}: ${res.error}`);
    return res.data.result;
  }

  async api<T>(path: string): Promise<T> {
    return ((await (await fetch(`${this.url}/api/v1/${path}`)).json()) as { data: T }).data;
  }

  stop(): void {
    this.proc?.kill('SIGTERM');
  }
}
