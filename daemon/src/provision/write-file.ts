// Replace a file whole or not at all: write a temporary file beside it, sync, rename.
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * The replacement keeps the old file's mode, owner and group: the daemon reads its config as the
 * qe-packets group (root:qe-packets 0640), and a root-run writer that reset them to root:root would
 * leave the service unable to start.
 */
export async function writeFileAtomic(path: string, text: string, opts: { mode?: number } = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.qe-tmp-${process.pid}`);
  const old = await stat(path).catch(() => undefined);
  // A mode asked for wins (a sudoers file must never be readable by others, even for an instant).
  const mode = opts.mode ?? (old ? old.mode & 0o7777 : 0o644);
  const fh = await open(tmp, 'w', mode);
  try {
    if (old && (old.uid !== process.getuid?.() || old.gid !== process.getgid?.())) await fh.chown(old.uid, old.gid);
    // open()'s mode passes through the umask; chmod after chown, which may clear set-id bits.
    await fh.chmod(mode);
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
