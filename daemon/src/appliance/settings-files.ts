// Appliance settings given as one file per property, for the deployments that have no OVF
// environment: systemd credentials (KVM passes them by SMBIOS: -smbios
// type=11,value=io.systemd.credential:qe.admin_ssh_key=...), and a folder on the EFI system
// partition, the one partition of a flashed disk any OS can write (qe-packets/admin_ssh_key).
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { APPLIANCE_PROPERTIES } from './properties.js';

export const CREDENTIAL_PREFIX = 'qe.';
/** Where systemd (252) puts the system credentials it imported at boot. */
export const SYSTEM_CREDENTIALS = '/run/credentials/@system';
export const ESP_SETTINGS = '/boot/efi/qe-packets';

export interface FileSettings {
  source: string;
  props: Record<string, string>;
}

/** The properties found as files `${prefix}KEY` in dir; unknown names are ignored. */
export async function settingsFromDir(dir: string, prefix = ''): Promise<FileSettings | undefined> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const props: Record<string, string> = {};
  for (const p of APPLIANCE_PROPERTIES) {
    if (!names.includes(`${prefix}${p.key}`)) continue;
    // One value per file; a trailing newline (an editor's, echo's) is not part of it.
    props[p.key] = (await readFile(join(dir, `${prefix}${p.key}`), 'utf8')).replace(/\r?\n$/, '');
  }
  return Object.keys(props).length ? { source: `${dir}/${prefix}{${Object.keys(props).join(',')}}`, props } : undefined;
}

/** The settings given as files under root: the ESP's, then the credentials', which win. */
export async function findSettingsFiles(root = '/'): Promise<FileSettings[]> {
  const found = [
    await settingsFromDir(join(root, ESP_SETTINGS)),
    await settingsFromDir(join(root, SYSTEM_CREDENTIALS), CREDENTIAL_PREFIX),
    process.env.CREDENTIALS_DIRECTORY ? await settingsFromDir(process.env.CREDENTIALS_DIRECTORY, CREDENTIAL_PREFIX) : undefined,
  ];
  return found.filter((f): f is FileSettings => f !== undefined);
}
