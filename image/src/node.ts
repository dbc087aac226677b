// Node.js in the base image: the product's one pinned runtime (package/src/node-runtime.ts), the
// same the update package ships, so the base and the daemon never run different versions.
import { rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE, unpackNode } from '../../package/src/node-runtime.js';

/** Unpacks the binary into /opt/node-vX and links it as /usr/local/bin/node. Headers and docs stay
 * out: the appliance runs built JavaScript and compiles nothing. */
export async function installNode(root: string, tarball: string): Promise<void> {
  await unpackNode(tarball, join(root, `opt/node-v${NODE.version}`));
  await rm(join(root, 'usr/local/bin/node'), { force: true });
  await symlink(`/opt/node-v${NODE.version}/bin/node`, join(root, 'usr/local/bin/node'));
}
