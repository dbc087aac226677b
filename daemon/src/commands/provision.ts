import { realpath } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import { formatSize } from '../config/units.js';
import { applyPlan } from '../provision/apply.js';
import { formatPlan } from '../provision/format.js';
import { InventoryError, readInventoryFile, readLocalInventory } from '../provision/inventory.js';
import { ProvisionError, parseDisks, parseFileSize, parseMode, parseProfile, parseRaid, parseRate } from '../provision/options.js';
import { planStorage } from '../provision/plan.js';
import { toJson } from '../util/json.js';
import { EXIT } from './common.js';

export const provisionHelp = `usage: qe-packets provision storage --profile 10TB|20TB|40TB|custom:SIZE|max [options]

Plans the capture storage of this box (or of another, from --inventory): which disks, the RAID
or per-disk layout, XFS aligned to it, mount points by UUID, the usable capacity, the resulting
storage.capacity, storage.file_size and number of files, and the retention at --rate. Prints the
plan and changes nothing unless --yes is given; with --yes it makes the filesystems, mounts them,
adds them to fstab and writes the storage: section of the config. Running it again on a
provisioned box changes nothing.

  --profile P         capture volume promised: 10TB, 20TB, 40TB (SI, 10^12 bytes), custom:SIZE, or max (all the disks hold)
  --disks D           auto (every unused whole disk, the default) or /dev/sdb,/dev/sdc,...
  --raid L            none (one filesystem per disk, the default), 0, 10 or 6 (md RAID)
  --file-size S       storage.file_size (default 1GiB)
  --mode M            storage.mode: circular (default) or linear
  --rate R            traffic rate for the retention estimate (default 10Gbps)
  --inventory FILE    plan from lsblk --json --bytes saved on another box (plan only)
  --json              print the plan as JSON
  --yes               apply the plan
  --force             erase disks that carry a partition table or filesystem signature
  --config FILE       config to write (default ${DEFAULT_CONFIG_PATH})
  --fstab FILE        fstab to write (default /etc/fstab)
  --mount-base DIR    mount points DIR/store0, DIR/store1 … (default /srv/qe-packets)
  --mdadm-conf FILE   where the array is recorded (default /etc/mdadm/mdadm.conf)

Refuses, changing nothing: disks too small for the profile, a disk that is mounted, in use,
or carries signatures (unless --force), a RAID level the disks cannot make.`;

export async function provisionCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what !== 'storage') {
    process.stderr.write(`qe-packets provision: ${what ? `unknown target '${what}'` : 'missing target'}; use: qe-packets provision storage --profile 10TB\n\n${provisionHelp}\n`);
    return EXIT.failure;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      profile: { type: 'string' },
      disks: { type: 'string' },
      raid: { type: 'string' },
      'file-size': { type: 'string' },
      mode: { type: 'string' },
      rate: { type: 'string' },
      inventory: { type: 'string' },
      json: { type: 'boolean', default: false },
      yes: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      config: { type: 'string', default: DEFAULT_CONFIG_PATH },
      fstab: { type: 'string', default: '/etc/fstab' },
      'mount-base': { type: 'string', default: '/srv/qe-packets' },
      'mdadm-conf': { type: 'string', default: '/etc/mdadm/mdadm.conf' },
    },
    allowPositionals: false,
  });
  try {
    const problems: string[] = [];
    const attempt = <T>(f: () => T): T | undefined => {
      try {
        return f();
      } catch (e) {
        if (e instanceof ProvisionError) problems.push(...e.reasons);
        else throw e;
        return undefined;
      }
    };
    const profile = attempt(() => parseProfile(values.profile));
    const raid = attempt(() => parseRaid(values.raid));
    const disks = attempt(() => parseDisks(values.disks));
    const fileSize = attempt(() => parseFileSize(values['file-size']));
    const mode = attempt(() => parseMode(values.mode));
    const rate = attempt(() => parseRate(values.rate));
    const mountBase = values['mount-base'].replace(/\/+$/, '');
    if (!mountBase.startsWith('/')) problems.push(`--mount-base ${values['mount-base']}: not an absolute path; write e.g. /srv/qe-packets`);
    if (values.inventory && values.yes) problems.push(`--inventory ${values.inventory} with --yes: a plan from an inventory is for another box and cannot be applied here; fix: drop --inventory to provision this box, or drop --yes to only plan`);
    if (problems.length || !profile || !disks || !fileSize || !mode || !rate) throw new ProvisionError(problems);

    const inventory = values.inventory ? await readInventoryFile(values.inventory) : await readLocalInventory();
    // On this box, /dev/disk/by-id/… and other links name the device lsblk lists.
    const named = disks === 'auto' || values.inventory ? disks : await Promise.all(disks.map((d) => realpath(d).catch(() => d)));
    const plan = planStorage(inventory, { profile, disks: named, raid, fileSize, mode, rate, force: values.force, mountBase });

    if (!values.yes) {
      process.stdout.write(values.json ? `${toJson(plan)}\n` : `${formatPlan(plan)}\nNothing changed. Run again with --yes to apply this plan.\n`);
      return EXIT.ok;
    }
    if (!values.json) process.stdout.write(`${formatPlan(plan)}\n`);
    const log = (line: string) => {
      if (!values.json) process.stdout.write(`${line}\n`);
    };
    const result = await applyPlan(plan, { configPath: values.config, fstabPath: values.fstab, mdadmConfPath: values['mdadm-conf'], force: values.force, log });
    if (values.json) process.stdout.write(`${toJson({ ...plan, applied: result })}\n`);
    else {
      if (result.changes.length) process.stdout.write(`done:\n${result.changes.map((c) => `  ${c}`).join('\n')}\n`);
      else process.stdout.write('nothing to do: the disks, mounts, fstab and config already match the plan\n');
      for (const f of result.filesystems) process.stdout.write(`  ${f.mountPoint}: ${f.label} UUID=${f.uuid}, ${formatSize(f.availBytes, 'si')} free\n`);
    }
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof ProvisionError) {
      if (values.json) process.stdout.write(`${toJson({ refused: true, reasons: e.reasons })}\n`);
      process.stderr.write(`qe-packets provision storage: refused, nothing changed:\n${e.reasons.map((r) => `  ${r}`).join('\n')}\n`);
      return EXIT.failure;
    }
    if (e instanceof InventoryError) {
      process.stderr.write(`qe-packets provision storage: ${e.message}\n`);
      return EXIT.failure;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`qe-packets provision storage: refused, nothing changed: the config cannot take this storage section:\n${e.message}\n`);
      return EXIT.config;
    }
    throw e;
  }
}
