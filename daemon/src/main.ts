#!/usr/bin/env node
// qe-packets: one command, one subcommand per job.
import module from 'node:module';
import { packageVersion } from './util/version.js';

// Node.js 22.1+ (the appliance's runtime) keeps compiled modules between runs: scripts and boot
// call the command often, and compiling is a good part of a start. Older Node.js has no such cache.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

interface Command {
  summary: string;
  /** Each command's module (and what it imports) loads only when that command runs: a start costs
   * what the command needs, not what all of them do (capture --read, status and firstboot are run
   * by scripts and at boot). */
  load: () => Promise<{ help: string; run: (argv: string[]) => Promise<number> }>;
}

const commands: Record<string, Command> = {
  capture: { summary: 'capture the configured interfaces (or --read a file) into the store', load: async () => { const m = await import('./commands/capture.js'); return { help: m.captureHelp, run: m.captureCommand }; } },
  'check-config': { summary: 'validate a configuration file without starting anything', load: async () => { const m = await import('./commands/check-config.js'); return { help: m.checkConfigHelp, run: m.checkConfigCommand }; } },
  extract: { summary: 'write the packets of a time range (and BPF filter) from the store into one pcap', load: async () => { const [m, a] = await Promise.all([import('./commands/extract.js'), import('./commands/extract-args.js')]); return { help: a.EXTRACT_USAGE, run: m.extractCommand }; } },
  files: { summary: 'list the capture files of a time range (interface, first and last packet, packets, size)', load: async () => { const m = await import('./commands/files.js'); return { help: m.FILES_USAGE, run: m.filesCommand }; } },
  flows: { summary: 'list the flows of a time range (who talked to whom, how much, TCP flags, RTT, Community ID)', load: async () => { const [m, a] = await Promise.all([import('./commands/flows.js'), import('./commands/flows-args.js')]); return { help: a.FLOWS_USAGE, run: m.flowsCommand }; } },
  stats: { summary: 'top talkers, ports, protocols of a time range, and a time series (--interval)', load: async () => { const [m, a] = await Promise.all([import('./commands/stats.js'), import('./commands/flows-args.js')]); return { help: a.STATS_USAGE, run: m.statsCommand }; } },
  token: { summary: 'create, list and revoke tokens for the API and web console', load: async () => { const m = await import('./commands/token.js'); return { help: m.tokenHelp, run: m.tokenCommand }; } },
  index: { summary: 'index the capture files that have no index, a damaged one, or one of other fields than the config', load: async () => { const m = await import('./commands/index.js'); return { help: m.indexHelp, run: m.indexCommand }; } },
  status: { summary: 'ask the running daemon for its health (ok, warning, critical) and key figures', load: async () => { const m = await import('./commands/status.js'); return { help: m.statusHelp, run: m.statusCommand }; } },
  interfaces: { summary: 'list the interfaces that can be captured', load: async () => { const m = await import('./commands/interfaces.js'); return { help: m.interfacesHelp, run: m.interfacesCommand }; } },
  provision: { summary: 'plan and make the capture storage: disks, RAID or not, XFS, mounts, config (provision storage)', load: async () => { const m = await import('./commands/provision.js'); return { help: m.provisionHelp, run: m.provisionCommand }; } },
  'console-setup': { summary: 'ask on the console for the admin SSH key when none was given (appliance)', load: async () => { const m = await import('./commands/console-setup.js'); return { help: m.consoleSetupHelp, run: m.consoleSetupCommand }; } },
  firstboot: { summary: 'apply the appliance settings given at import (OVF properties) and provision the store disk, once', load: async () => { const m = await import('./commands/firstboot.js'); return { help: m.firstbootHelp, run: m.firstbootCommand }; } },
  demo: { summary: 'capture mixed traffic on a throw-away veth pair and show it in tshark', load: async () => { const m = await import('./commands/demo.js'); return { help: m.demoHelp, run: m.demoCommand }; } },
};


function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return `usage: qe-packets <command> [options]   (qe-packets <command> --help for more)

Qe-Packets ${packageVersion()}: full packet capture to standard pcap files.

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
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`qe-packets: unknown command '${name}'\n\n${usage()}`);
    return 1;
  }
  const cmd = await entry.load();
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

// `qe-packets stats | head` closes the pipe early: that is the reader's choice, not an error (as
// for tcpdump); any other write error still surfaces.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(process.exitCode ?? 0);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`qe-packets: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
