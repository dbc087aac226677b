// A stand-in Qe-Server for the Qualevent tests: a real HTTPS server with a CA and a certificate made
// here by openssl, that reads each POST with the CloudEvents SDK (HTTP.toEvent validates every
// event against the spec) and answers what the test says.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:https';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CloudEvent, HTTP } from 'cloudevents';
import { execa } from 'execa';

export interface ReceivedBatch {
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
  events: CloudEvent<Record<string, unknown>>[];
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string };

/** A CA, and a server certificate it signed for 127.0.0.1 and localhost. */
export async function makeCertificates(dir: string): Promise<{ caFile: string; cert: string; key: string }> {
  const p = (n: string) => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256'];
  await execa('openssl', ['req', '-x509', ...ec, '-days', '2', '-subj', '/CN=Qualevent test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', p('ca.key'), '-out', p('ca.pem')]);
  await execa('openssl', ['req', ...ec, '-subj', '/CN=qe-server.test', '-keyout', p('server.key'), '-out', p('server.csr')]);
  const ext = p('server.ext');
  await execa('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > ${ext}`]);
  await execa('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', p('server.pem')]);
  return { caFile: p('ca.pem'), cert: await readFile(p('server.pem'), 'utf8'), key: await readFile(p('server.key'), 'utf8') };
}

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
