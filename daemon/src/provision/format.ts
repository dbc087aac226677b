// The plan as people read it.
import { formatSize, formatSizeBoth as both } from '../config/units.js';
import type { StoragePlan } from './plan.js';

export function formatDuration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  if (m < 120) return `${m} min`;
  const h = seconds / 3600;
  if (h < 48) return `${h.toFixed(1)} h`;
  return `${(h / 24).toFixed(1)} days`;
}

export function formatPlan(plan: StoragePlan): string {
  const out: string[] = [];
  out.push(`Storage plan: profile ${plan.profile}, ${plan.layout.description}`);
  out.push('');
  out.push('disks:');
  for (const d of plan.disks) {
    const state = d.state === 'ours' ? 'already provisioned' : d.state === 'wipe' ? `WILL BE ERASED (--force; ${d.note ?? 'signatures'})` : 'blank';
    out.push(`  ${d.path.padEnd(14)} ${both(d.sizeBytes).padEnd(22)} ${(d.model ?? '').padEnd(20)} ${state}`);
  }
  for (const e of plan.excluded) out.push(`  ${e.path.padEnd(14)} not used: ${e.reason}`);
  out.push('');
  out.push(`layout: ${plan.raid === 'none' ? 'no RAID' : `md RAID ${plan.raid}`}`);
  out.push(`  why: ${plan.raidReason}`);
  if (plan.layout.mdadm) out.push(`  ${plan.layout.mdadm.join(' ')}`);
  else if (plan.layout.kind === 'md-raid') out.push(`  existing array ${plan.layout.device}`);
  out.push('');
  out.push(`filesystems: XFS, mounted by UUID with ${plan.filesystem.mountOptions}`);
  for (const f of plan.filesystems) {
    out.push(
      `  ${f.label.padEnd(11)} ${f.device.padEnd(16)} → ${f.mountPoint.padEnd(26)} ${both(f.usableBytes).padEnd(22)} ${f.exists ? `exists (UUID=${f.uuid ?? '?'})` : `new: ${f.mkfs.join(' ')}`}`,
    );
  }
  out.push(`  fstab: ${plan.filesystem.fstabOptions}`);
  out.push('');
  out.push(`usable:     ${both(plan.usableBytes)} of ${both(plan.rawBytes)} raw (estimated: XFS log and metadata reserved)`);
  out.push(`headroom:   ${both(plan.headroomBytes)} kept free (5% of each filesystem, at least two files) so circular retention never fills a disk`);
  out.push(`storage:`);
  out.push(`  paths:     [${plan.paths.join(', ')}]`);
  out.push(`  capacity:  ${plan.capacity}   (${both(plan.capacityBytes)})`);
  out.push(`  file_size: ${plan.fileSize}   (${plan.fileCount} files)`);
  out.push(`  mode:      ${plan.mode}`);
  out.push(`retention:  about ${formatDuration(plan.retentionSeconds)} at ${plan.rate} (capacity / rate)`);
  for (const n of plan.notes) out.push(`note: ${n}`);
  if (plan.provisioned) out.push(`\nEvery filesystem exists already (${plan.filesystems.map((f) => f.label).join(', ')}).`);
  return `${out.join('\n')}\n`;
}

export { formatSize };
