// Runs the compiled `qe-packets extract` as a process of its own, as the CLI will, so tests see
// its real stdout, stderr, TTY handling and exit status.
const { extractCommand } = await import(new URL('../../build/daemon/src/commands/extract.js', import.meta.url));
process.exitCode = await extractCommand(process.argv.slice(2));
