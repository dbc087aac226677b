#!/usr/bin/env node
// qe-packets: one command, one subcommand per job.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { captureCommand, captureHelp } from './commands/capture.js';
import { checkConfigCommand, checkConfigHelp } from './commands/check-config.js';
import { demoCommand, demoHelp } from './commands/demo.js';
import { extractCommand } from './commands/extract.js';
import { EXTRACT_USAGE } from './commands/extract-args.js';
import { firstbootCommand, firstbootHelp } from './commands/firstboot.js';
import { consoleSetupCommand, consoleSetupHelp } from './commands/console-setup.js';
import { interfacesCommand, interfacesHelp } from './commands/interfaces.js';
import { statusCommand, statusHelp } from './commands/status.js';
import { provisionCommand, provisionHelp } from './commands/provision.js';
import { packageRoot } from './util/native.js';

interface Command {
  summary: string;
  help: string;
  run: (argv: string[]) => Promise<number>;
}

const commands: Record<string, Command> = {
  capture: { summary: 'capture the configured interfaces (or --read a file) into the store', help: captureHelp, run: captureCommand },
  'check-config': { summary: 'validate a configuration file without starting anything', help: checkConfigHelp, run: checkConfigCommand },
  extract: { summary: 'write the packets of a time range (and BPF filter) from the store into one pcap', help: EXTRACT_USAGE, run: extractCommand },
  status: { summary: 'ask the running daemon for its health (ok, warning, critical) and key figures', help: statusHelp, run: statusCommand },
  interfaces: { summary: 'list the interfaces that can be captured', help: interfacesHelp, run: interfacesCommand },
  provision: { summary: 'plan and make the capture storage: disks, RAID or not, XFS, mounts, config (provision storage)', help: provisionHelp, run: provisionCommand },
  'console-setup': { summary: 'ask on the console for the admin SSH key when none was given (appliance)', help: consoleSetupHelp, run: consoleSetupCommand },
  firstboot: { summary: 'apply the appliance settings given at import (OVF properties) and provision the store disk, once', help: firstbootHelp, run: firstbootCommand },
  demo: { summary: 'capture mixed traffic on a throw-away veth pair and show it in tshark', help: demoHelp, run: demoCommand },
};

function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return `usage: qe-packets <command> [options]   (qe-packets <command> --help for more)

Qe-Packets ${version()}: full packet capture to standard pcap files.

commands:
${Object.entries(commands).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`).join('\n')}
`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 1;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`qe-packets: unknown command '${name}'\n\n${usage()}`);
    return 1;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${cmd.help}\n`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`qe-packets ${name}: ${err.message}\n\n${cmd.help}\n`);
      return 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`qe-packets: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
