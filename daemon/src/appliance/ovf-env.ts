// Reading the OVF environment: the properties a user set at import, as VMware hands them to the
// guest (guestinfo.ovfEnv through VMware Tools, or an ISO with ovf-env.xml) — DSP0243 section 11.
import { XMLParser } from 'fast-xml-parser';

export class OvfEnvError extends Error {}

export function parseOvfEnvironment(xml: string, source: string): Record<string, string> {
  const parser = new XMLParser({ ignoreAttributes: false, removeNSPrefix: true, attributeNamePrefix: '@', isArray: (name) => name === 'Property' });
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(xml, true) as Record<string, unknown>;
  } catch (e) {
    throw new OvfEnvError(`${source}: not an OVF environment document (${(e as Error).message.split('\n')[0]})`);
  }
  const env = doc.Environment as { PropertySection?: { Property?: { '@key'?: string; '@value'?: string }[] } } | undefined;
  if (!env) throw new OvfEnvError(`${source}: no <Environment> element: not an OVF environment document`);
  const out: Record<string, string> = {};
  for (const p of env.PropertySection?.Property ?? []) if (p['@key']) out[p['@key']] = String(p['@value'] ?? '');
  return out;
}
