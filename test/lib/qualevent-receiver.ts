// A stand-in Qe-Server for the Qualevent tests: a real HTTPS server with a CA and a certificate made
// by openssl (certificates.ts), that reads each POST with the CloudEvents SDK (HTTP.toEvent validates every
// event against the spec) and answers what the test says.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:https';
import { CloudEvent, HTTP } from 'cloudevents';
export { makeCertificates } from './certificates.js';

export interface ReceivedBatch {
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
  events: CloudEvent<Record<string, unknown>>[];
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string };

export class Receiver {
  readonly batches: ReceivedBatch[] = [];
  /** Every request, parsed or not, with the answer given. */
  readonly requests: { at: number; status: number }[] = [];
  answer: (events: CloudEvent<Record<string, unknown>>[], n: number) => Answer = () => ({ status: 200 });
  port = 0;
  private server?: Server;

  constructor(private readonly tls: { cert: string; key: string }) {}

  get url(): string {
    return `https://127.0.0.1:${this.port}/api/events`;
  }

  /** Listens (again, on the same port after close()). */
  async open(): Promise<void> {
    const server = createServer(this.tls, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let events: CloudEvent<Record<string, unknown>>[];
        try {
          const parsed = HTTP.toEvent<Record<string, unknown>>({ headers: req.headers as Record<string, string>, body });
          events = Array.isArray(parsed) ? parsed : [parsed];
        } catch (e) {
          this.requests.push({ at: Date.now(), status: 422 });
          res.writeHead(422).end(`not CloudEvents: ${(e as Error).message}`);
          return;
        }
        const a = this.answer(events, this.requests.length);
        this.requests.push({ at: Date.now(), status: a.status });
        if (a.status >= 200 && a.status < 300) this.batches.push({ at: Date.now(), headers: req.headers, body, events });
        res.writeHead(a.status, a.headers ?? {}).end(a.body ?? '');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Down: the port refuses connections until open() again. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Every event the server took (2xx), in arrival order. */
  events(): CloudEvent<Record<string, unknown>>[] {
    return this.batches.flatMap((b) => b.events);
  }
}
