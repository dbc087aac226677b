// The appliance settings from the OVF properties, checked. A bad value is reported with the
// property, the value and the fix, and that one setting falls back to its default: a typo in the
// DNS servers must not keep the appliance from capturing.
import { isIPv4 } from 'node:net';
import { isQualeventUrl } from '../config/load.js';
import { APPLIANCE_PROPERTIES, STORAGE_PROFILES } from './properties.js';

export interface ApplianceSettings {
  hostname: string;
  /** undefined: DHCP. */
  mgmt?: { address: string; prefix: number; gateway?: string; dns: string[] };
  adminSshKey?: string;
  /** 'auto' or an interface name. */
  captureInterface: string;
  storageProfile: (typeof STORAGE_PROFILES)[number];
  /** Reports to Qe-Server; the token is a secret (see redactSettings). */
  qualevent?: { url: string; token?: string };
}

export interface SettingProblem {
  key: string;
  value: string;
  message: string;
  fix: string;
}

const DEFAULTS = Object.fromEntries(APPLIANCE_PROPERTIES.map((p) => [p.key, p.value])) as Record<string, string>;
const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;
export const SSH_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;
const TOKEN = /^[\x21-\x7e]{1,4096}$/;
const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;

export function readSettings(props: Record<string, string>): { settings: ApplianceSettings; problems: SettingProblem[] } {
  const problems: SettingProblem[] = [];
  const get = (key: string) => (props[key] ?? DEFAULTS[key] ?? '').trim();
  const bad = (key: string, message: string, fix: string) => problems.push({ key, value: get(key), message, fix });

  let hostname = get('hostname') || DEFAULTS.hostname!;
  if (!HOSTNAME.test(hostname)) {
    bad('hostname', 'not a host name', 'use letters, digits and inner hyphens, at most 63 characters (e.g. capture-01)');
    hostname = DEFAULTS.hostname!;
  }

  let mgmt: ApplianceSettings['mgmt'];
  const cidr = get('mgmt_address');
  if (cidr) {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
    if (!m || !isIPv4(m[1]!) || Number(m[2]) < 1 || Number(m[2]) > 32) {
      bad('mgmt_address', 'not an IPv4 address with a prefix length', 'write e.g. 192.0.2.10/24, or leave it empty for DHCP; DHCP is used meanwhile');
    } else {
      const gateway = get('mgmt_gateway');
      if (gateway && !isIPv4(gateway)) bad('mgmt_gateway', 'not an IPv4 address', 'write e.g. 192.0.2.1, or leave it empty');
      const dnsText = get('dns_servers');
      const dns = dnsText ? dnsText.split(/[\s,]+/).filter(Boolean) : [];
      const badDns = dns.filter((d) => !isIPv4(d));
      if (badDns.length) bad('dns_servers', `${badDns.join(', ')} ${badDns.length === 1 ? 'is' : 'are'} not IPv4 addresses`, 'write addresses separated by commas, e.g. 192.0.2.53, 198.51.100.53');
      mgmt = { address: m[1]!, prefix: Number(m[2]), ...(gateway && isIPv4(gateway) ? { gateway } : {}), dns: dns.filter((d) => isIPv4(d)) };
    }
  }

  let adminSshKey: string | undefined = get('admin_ssh_key') || undefined;
  if (adminSshKey && !SSH_KEY.test(adminSshKey)) {
    bad('admin_ssh_key', 'not an OpenSSH public key', 'paste one line of ~/.ssh/id_ed25519.pub (ssh-ed25519 AAAA... comment); log in on the console meanwhile');
    adminSshKey = undefined;
  }

  let captureInterface = get('capture_interface') || 'auto';
  if (captureInterface !== 'auto' && !IFNAME.test(captureInterface)) {
    bad('capture_interface', 'not an interface name', 'write a name such as ens224, or auto for the second NIC');
    captureInterface = 'auto';
  }

  let storageProfile = (get('storage_profile') || 'auto') as ApplianceSettings['storageProfile'];
  if (!(STORAGE_PROFILES as readonly string[]).includes(storageProfile)) {
    bad('storage_profile', 'not a storage profile', `choose one of ${STORAGE_PROFILES.join(', ')}`);
    storageProfile = 'auto';
  }
  let qualevent: ApplianceSettings['qualevent'];
  const url = get('qualevent_url');
  const token = get('qualevent_token');
  if (url && !isQualeventUrl(url)) bad('qualevent_url', 'not an http(s) URL without credentials', 'write e.g. https://qe-server.example/api/events (the token goes in qualevent_token); no reports meanwhile');
  else if (url) qualevent = { url };
  if (token && !TOKEN.test(token)) {
    // The value is a secret: the problem names the property, never what was typed.
    problems.push({ key: 'qualevent_token', value: '(hidden)', message: 'not a token: it holds spaces or control characters', fix: 'paste the token alone, without spaces or line breaks' });
  } else if (token && qualevent) qualevent.token = token;
  else if (token) bad('qualevent_url', 'empty while qualevent_token is set', 'set qualevent_url too; the token is not used meanwhile');
  return { settings: { hostname, ...(mgmt ? { mgmt } : {}), ...(adminSshKey ? { adminSshKey } : {}), captureInterface, storageProfile, ...(qualevent ? { qualevent } : {}) }, problems };
}

/** The settings as they may be printed: secrets replaced by whether they were given. */
export function redactSettings(s: ApplianceSettings): ApplianceSettings {
  return s.qualevent?.token ? { ...s, qualevent: { ...s.qualevent, token: '(set)' } } : s;
}
