// A throw-away PKI for tests and benchmarks of TLS clients: a CA, and a server certificate it signed
// for 127.0.0.1 and localhost, made by openssl (P-256: milliseconds to make).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/** A CA, and a server certificate it signed for 127.0.0.1 and localhost. */
export async function makeCertificates(dir: string): Promise<{ caFile: string; cert: string; key: string }> {
  const p = (n: string) => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256'];
  await execa('openssl', ['req', '-x509', ...ec, '-days', '2', '-subj', '/CN=Qualevent test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', p('ca.key'), '-out', p('ca.pem')]);
  await execa('openssl', ['req', ...ec, '-subj', '/CN=qe-server.test', '-keyout', p('server.key'), '-out', p('server.csr')]);
  const ext = p('server.ext');
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await execa('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', p('server.pem')]);
  return { caFile: p('ca.pem'), cert: await readFile(p('server.pem'), 'utf8'), key: await readFile(p('server.key'), 'utf8') };
}
