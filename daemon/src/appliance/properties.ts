// The appliance settings a VMware or KVM user fills in at import (OVF ProductSection properties).
// Written once: the descriptor declares them, first boot reads them back from the OVF environment.

export interface ApplianceProperty {
  key: string;
  label: string;
  description: string;
  /** Default value ('' for none). */
  value: string;
  /** Allowed values, when the property is a choice. */
  choices?: string[];
  /** A secret: the hypervisor masks it (ovf:password), and first boot never prints it. */
  secret?: boolean;
}

export const STORAGE_PROFILES = ['auto', '10TB', '20TB', '40TB'] as const;

export const APPLIANCE_PROPERTIES: ApplianceProperty[] = [
  { key: 'hostname', label: 'Hostname', description: 'Host name of the appliance.', value: 'qe-packets' },
  {
    key: 'mgmt_address',
    label: 'Management address',
    description: 'IPv4 address with prefix length on the management NIC, e.g. 192.0.2.10/24. Empty: DHCP.',
    value: '',
  },
  { key: 'mgmt_gateway', label: 'Management gateway', description: 'Default gateway (static address only).', value: '' },
  { key: 'dns_servers', label: 'DNS servers', description: 'Comma-separated DNS servers (static address only).', value: '' },
  {
    key: 'admin_ssh_key',
    label: 'Administrator SSH public key',
    description: 'OpenSSH public key for the user "admin" (e.g. ssh-ed25519 AAAA... you@host). There is no password login: without a key, the console asks for one.',
    value: '',
  },
  {
    key: 'capture_interface',
    label: 'Capture interface',
    description: 'Interface connected to the mirror port or tap. "auto": the second NIC.',
    value: 'auto',
  },
  {
    key: 'storage_profile',
    label: 'Storage profile',
    description: 'Capture volume to provision on the store disk. "auto": all of the second disk. Resize the second disk to at least the profile before first boot.',
    value: 'auto',
    choices: [...STORAGE_PROFILES],
  },
  {
    key: 'qualevent_url',
    label: 'Qe-Server URL',
    description: 'URL the element states are reported to (CloudEvents over HTTPS), e.g. https://qe-server.example/api/events. Empty: no reports.',
    value: '',
  },
  {
    key: 'qualevent_token',
    label: 'Qe-Server token',
    description: 'Bearer token the appliance presents to Qe-Server. Kept in /etc/qe-packets/qualevent.token, readable by the daemon only.',
    value: '',
    secret: true,
  },
];
