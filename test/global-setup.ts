// One temporary folder for the whole run, removed at its end: tests make their folders with
// os.tmpdir() (TMPDIR), and the tools they start inherit it. Without it every run left its
// stores, some of gigabytes, in /tmp until the disk filled.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'qe-tests-'));
  // As /tmp itself: the tests' unprivileged users (qe-packets) reach their folders through it.
  chmodSync(root, 0o1777);
  process.env.TMPDIR = root;
  return () => {
    try {
      rmSync(root, { recursive: true, force: true });
    } catch (e) {
      // A mount a failed test left behind: say where, so it can be undone by hand.
      process.stderr.write(`test temporary folder ${root} not removed: ${(e as Error).message}\n`);
    }
  };
}
