// The console fallback of an appliance deployed without an admin key: there is no password
// anywhere, so the console asks for a public key instead of a login. It runs on tty1 only while
// no key is installed (qe-packets-console-setup.service).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { ADMIN_USER, installAdminKey } from '../appliance/apply.js';
import { SSH_KEY } from '../appliance/settings.js';
import { EXIT } from './common.js';

export const consoleSetupHelp = `usage: qe-packets console-setup [--root DIR]

Asks on the console for the admin's SSH public key, when none was given at deployment (OVF
property, systemd credential or the ESP), and installs it for the user "${ADMIN_USER}". Runs on
tty1 by itself on such an appliance; an empty answer leaves the console to the normal login.

  --root DIR   configure the system mounted at DIR instead of this one`;

export async function consoleSetupCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { root: { type: 'string' } } });
  const root = values.root ?? '/';
  const keys = join(root, `home/${ADMIN_USER}/.ssh/authorized_keys`);
  if (existsSync(keys)) {
    process.stdout.write(`the admin already has a key (${keys}): nothing to do\n`);
    return EXIT.ok;
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
  process.stdout.write(
    `\nQe-Packets: no administrator key was given at deployment, and this appliance has no passwords.\n` +
      `Paste an OpenSSH public key for the user "${ADMIN_USER}" (ssh-ed25519 AAAA... you@host),\n` +
      `or press Enter to skip (then give one as the OVF property admin_ssh_key, or the file qe-packets/admin_ssh_key on the EFI partition, and reboot).\n`,
  );
  try {
    // Lines read as they come (not rl.question): a pasted key arrives with its newline at once.
    process.stdout.write('admin SSH public key: ');
    for await (const line of rl) {
      const answer = line.trim();
      if (!answer) break;
      if (!SSH_KEY.test(answer)) {
        process.stdout.write(`that is not an OpenSSH public key (it must start with ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521, then the base64 key); try again\nadmin SSH public key: `);
        continue;
      }
      const notes: string[] = [];
      await installAdminKey(root, answer, notes);
      for (const n of notes) process.stdout.write(`${n}\n`);
      process.stdout.write(`key installed: log in with ssh ${ADMIN_USER}@<this appliance>\n`);
      return EXIT.ok;
    }
    process.stdout.write('skipped: no key installed\n');
    return EXIT.ok;
  } finally {
    rl.close();
  }
}
