// The appliance's first boot: an API that listens off loopback needs a certificate, and an
// appliance imported from an OVA has none. One is made here, self-signed for the host name and the
// management address (openssl req), and named in the config (api.tls.cert, api.tls.key). People
// check it by its SHA-256 fingerprint, which `qe-packets status` and the console's login page show.
import { X509Certificate } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rename } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { isMap, parseDocument } from 'yaml';
import { isLoopback, parseConfigText } from '../config/load.js';
import { writeFileAtomic } from '../provision/write-file.js';

export const API_CERT = '/etc/qe-packets/api.crt';
export const API_KEY = '/etc/qe-packets/api.key';

export type CertOutcome = { made: false; why: string } | { made: true; cert: string; key: string; fingerprint: string; names: string[] };

/**
 * Makes the certificate and names it in the config when api.listen is off loopback and no
 * certificate is given; leaves everything alone otherwise (a certificate of the operator's own is
 * never replaced). `addresses`: the management address when it is static.
 */
export async function ensureApiCertificate(o: { root: string; configPath: string; hostname: string; addresses: string[] }): Promise<CertOutcome> {
  const configFile = join(o.root, o.configPath);
  const text = await readFile(configFile, 'utf8').catch(() => '');
  const doc = parseDocument(text);
  if (doc.errors.length || (doc.contents !== null && !isMap(doc.contents))) return { made: false, why: `${o.configPath} does not parse: left alone` };
  const listen = doc.getIn(['api', 'listen']);
  if (listen === false) return { made: false, why: 'api.listen is false' };
  const host = typeof listen === 'string' ? /^\[?([^\]]+?)\]?:\d+$/.exec(listen)?.[1] : undefined;
  if (!host || isLoopback(host)) return { made: false, why: `api.listen ${String(listen ?? '127.0.0.1:8443 (the default)')} is on loopback: plain HTTP there` };
  if (doc.getIn(['api', 'tls', 'cert']) || doc.getIn(['api', 'tls', 'key'])) return { made: false, why: 'api.tls.cert is given' };

  const ips = [...new Set([...o.addresses, ...(host === '0.0.0.0' || host === '::' ? [] : [host])])];
  const names = [o.hostname, ...ips];
  const san = [`DNS:${o.hostname}`, ...ips.map((a) => `IP:${a}`)].join(',');
  const cert = join(o.root, API_CERT);
  const key = join(o.root, API_KEY);
  await mkdir(dirname(cert), { recursive: true });
  // openssl: in the image's packages and the .deb's Depends (test/package.test.ts holds both to this call). P-256: every browser and curl takes it, and it is made in milliseconds (an RSA key on a slow first boot takes seconds).
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256', '-days', '3650', '-subj', `/CN=${o.hostname}`, '-addext', `subjectAltName=${san}`, '-addext', 'extendedKeyUsage=serverAuth', '-keyout', `${key}.tmp`, '-out', `${cert}.tmp`]);
  // The daemon reads the key as it reads its config (root:qe-packets 0640); nobody else does.
  const group = existsSync(configFile) ? statSync(configFile).gid : 0;
  await chown(`${key}.tmp`, 0, group).catch(() => {});
  await chmod(`${key}.tmp`, 0o640);
  await chmod(`${cert}.tmp`, 0o644);
  await rename(`${key}.tmp`, key);
  await rename(`${cert}.tmp`, cert);

  doc.setIn(['api', 'tls', 'cert'], API_CERT);
  doc.setIn(['api', 'tls', 'key'], API_KEY);
  const out = doc.toString();
  parseConfigText(out, o.configPath);
  await writeFileAtomic(configFile, out);
  return { made: true, cert: API_CERT, key: API_KEY, fingerprint: new X509Certificate(await readFile(cert)).fingerprint256, names };
}
