// Real servers and clients for the element tests, run inside a network namespace
// (`ip netns exec NS node element-peer.mjs serve|client ...`).
//   serve ADDR: HTTP on :80 (503 for paths under /fail, 200 otherwise), a port that resets every
//     connection it accepts (:82), one that answers and closes (:83), DNS on UDP :53 (SERVFAIL for
//     names starting with "fail", NOERROR otherwise); prints "ready" once all listen.
//   client JSON: runs the steps in order, one connection each, and prints one line of results.
//     {http: "ADDR/path"} | {connect: "ADDR:PORT"} | {silent: "ADDR:PORT", ms} | {dns: "ADDR", name}
import { createSocket } from 'node:dgram';
import { get } from 'node:http';
import { connect, createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';

const [mode, arg] = process.argv.slice(2);

function dnsQuestion(msg) {
  const labels = [];
  let i = 12;
  while (msg[i]) {
    labels.push(msg.subarray(i + 1, i + 1 + msg[i]).toString('latin1'));
    i += msg[i] + 1;
  }
  return { name: labels.join('.'), end: i + 5 };
}

async function serve(addr) {
  const listen = (server, port) => new Promise((ok, fail) => server.once('error', fail).listen(port, addr, ok));
  const http = createHttpServer((req, res) => {
    const fail = req.url.startsWith('/fail');
    res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain', connection: 'close' }).end(fail ? 'unavailable\n' : 'ok\n');
  });
  await listen(http, 80);
  await listen(createServer((s) => s.resetAndDestroy()), 82);
  await listen(createServer((s) => s.end('hello\n')), 83);
  const dns = createSocket('udp4');
  dns.on('message', (q, from) => {
    const { name, end } = dnsQuestion(q);
    const a = Buffer.from(q.subarray(0, end));
    a[2] = 0x80 | (q[2] & 0x79); // QR, the query's opcode and RD
    a[3] = 0x80 | (name.startsWith('fail') ? 2 : 0); // RA, RCODE
    a.writeUInt16BE(1, 4);
    a.writeUInt32BE(0, 6);
    a.writeUInt16BE(0, 10);
    dns.send(a, from.port, from.address);
  });
  await new Promise((ok) => dns.bind(53, addr, ok));
  process.stdout.write('ready\n');
}

const hostPort = (s) => {
  const [host, port] = s.split(':');
  return { host, port: Number(port) };
};

function step(s) {
  if (s.http)
    return new Promise((ok) => {
      const [host, ...path] = s.http.split('/');
      get({ host, port: 80, path: `/${path.join('/')}`, agent: false }, (res) => {
        res.resume();
        res.on('end', () => ok(res.statusCode));
      }).on('error', (e) => ok(e.code));
    });
  if (s.connect)
    return new Promise((ok) => {
      const c = connect(hostPort(s.connect));
      c.on('connect', () => c.end());
      c.on('data', () => {});
      c.on('close', () => ok('closed'));
      c.on('error', (e) => ok(e.code));
    });
  if (s.silent)
    return new Promise((ok) => {
      const c = connect(hostPort(s.silent));
      c.on('error', (e) => ok(e.code));
      setTimeout(() => {
        c.destroy();
        ok('timeout');
      }, s.ms ?? 500);
    });
  if (s.dns)
    return new Promise((ok) => {
      const sock = createSocket('udp4');
      const labels = s.name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'latin1')]);
      const q = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
      const timer = setTimeout(() => (sock.close(), ok('timeout')), 2000);
      sock.on('message', (a) => {
        clearTimeout(timer);
        sock.close();
        ok(`rcode ${a[3] & 0x0f}`);
      });
      sock.send(q, 53, s.dns);
    });
  throw new Error(`unknown step ${JSON.stringify(s)}`);
}

async function client(plan) {
  const out = [];
  for (const s of JSON.parse(plan)) out.push(await step(s));
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

if (mode === 'serve') await serve(arg);
else if (mode === 'client') await client(arg);
else throw new Error('usage: element-peer.mjs serve ADDR | client JSON');
