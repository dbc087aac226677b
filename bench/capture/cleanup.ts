// Undo actions that must run however the benchmark ends: normally, by an exception, or by
// Ctrl-C / SIGTERM. Namespaces, veths, child processes and temporary folders would otherwise
// outlive the run on a machine other people are using.

type Action = () => Promise<void> | void;

const actions: { name: string; run: Action }[] = [];
let running: Promise<void> | undefined;

/** Registers an undo action; returns a function that runs it now and unregisters it. */
export function onCleanup(name: string, run: Action): () => Promise<void> {
  const entry = { name, run };
  actions.push(entry);
  return async () => {
    const i = actions.indexOf(entry);
    if (i < 0) return;
    actions.splice(i, 1);
    await entry.run();
  };
}

/** Runs every registered action, newest first; errors are reported, not thrown. */
export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (actions.length > 0) {
      const a = actions.pop()!;
      try {
        await a.run();
      } catch (err) {
        process.stderr.write(`cleanup ${a.name}: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  })();
  return running;
}

export function installSignalCleanup(): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // Stays installed: a second Ctrl-C (or a wrapper forwarding the signal) must not kill the
    // process with the default action halfway through the cleanup.
    process.on(sig, () => {
      if (stopping) {
        process.stderr.write(`${sig}: still cleaning up\n`);
        return;
      }
      stopping = true;
      process.stderr.write(`\n${sig}: stopping, cleaning up\n`);
      void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}
