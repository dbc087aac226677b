// The token and the CA of qualevent, read from their files: problems named by key, value and fix,
// the token itself never in a message.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import type { ConfigProblem } from '../config/errors.js';

export interface QualeventCredentials {
  token?: string;
  ca?: string;
}

export async function readQualeventCredentials(q: Config['qualevent']): Promise<{ credentials: QualeventCredentials; problems: ConfigProblem[] }> {
  const problems: ConfigProblem[] = [];
  const credentials: QualeventCredentials = {};
  const read = async (key: string, path: string) =>
    readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      problems.push({
        key,
        value: path,
        message: e.code === 'ENOENT' ? 'no such file' : `cannot be read (${e.code ?? e.message})`,
        fix: e.code === 'ENOENT' ? 'create it, correct the path, or remove the key' : 'let the qe-packets user read it (chgrp qe-packets FILE; chmod 0640 FILE)',
      });
      return undefined;
    });
  if (q.tokenFile) {
    const text = await read('qualevent.token_file', q.tokenFile);
    const token = text?.trim();
    if (text !== undefined && (!token || /\s/.test(token)))
      problems.push({ key: 'qualevent.token_file', value: q.tokenFile, message: token ? 'holds more than one word' : 'is empty', fix: 'write the bearer token alone on one line' });
    else if (token) credentials.token = token;
  }
  if (q.caFile) {
    const pem = await read('qualevent.ca_file', q.caFile);
    if (pem !== undefined) {
      try {
        new X509Certificate(pem);
        credentials.ca = pem;
      } catch {
        problems.push({ key: 'qualevent.ca_file', value: q.caFile, message: 'holds no PEM certificate', fix: 'give the CA certificate of Qe-Server in PEM (-----BEGIN CERTIFICATE-----)' });
      }
    }
  }
  return { credentials, problems };
}
