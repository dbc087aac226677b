// Real conversations for the demo, run inside the demo's namespaces:
//   server ADDR...           HTTP on :8080 and a DNS-style UDP responder on :53 on each address
//   client ADDR... SECONDS   HTTP GETs of varied sizes and UDP queries to each address
import { createSocket } from 'node:dgram';
import { createServer, get } from 'node:http';

const [role, ...args] = process.argv.slice(2);

function dnsStyleQuery(id: number, name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // standard query, recursion desired
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

function server(addrs: string[]): void {
  for (const addr of addrs) {
    createServer((req, res) => {
      const size = Math.min(Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? 1000), 1 << 20);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      res.end(Buffer.alloc(size, 0x61));
    }).listen(8080, addr);
    const udp = createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      const answer = Buffer.from(msg);
      if (answer.length >= 4) answer.writeUInt16BE(0x8180, 2); // a response, no error
      udp.send(answer, rinfo.port, rinfo.address);
    });
    udp.bind(53, addr);
  }
}

async function client(addrs: string[], seconds: number): Promise<void> {
  const until = Date.now() + seconds * 1000;
  const udp = createSocket('udp4');
  const sizes = [200, 1500, 12_000, 64_000, 250_000];
  const names = ['example.org', 'qualevent.example', 'updates.example.net', 'mail.example.com'];
  let i = 0;
  while (Date.now() < until) {
    for (const addr of addrs) {
      const size = sizes[i % sizes.length]!;
      await new Promise<void>((resolve) => {
        get({ host: addr, port: 8080, path: `/object?size=${size}`, agent: false }, (res) => {
          res.resume();
          res.on('end', resolve);
        }).on('error', () => resolve());
      });
      udp.send(dnsStyleQuery(i & 0xffff, names[i % names.length]!), 53, addr);
      i++;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  udp.close();
}

if (role === 'server') server(args);
else if (role === 'client') await client(args.slice(0, -1), Number(args.at(-1)));
else {
  process.stderr.write('usage: traffic-peer server ADDR... | client ADDR... SECONDS\n');
  process.exitCode = 1;
}
