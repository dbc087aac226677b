// The OVF 1.1 descriptor of the appliance (DMTF DSP0243; validated in the tests against the DSP8023
// schema). Two NICs (management, capture) and two disks (system, capture store), VMware
// paravirtual devices, EFI firmware, and the appliance settings in a ProductSection. Every disk
// has a file: the store disk an empty streamOptimized VMDK of its capacity. VMware creates a disk
// of the capacity either way, but virt-v2v (2.2) refuses a <Disk> without ovf:fileRef
// ("error parsing disk fileRef"), so an OVA with a file-less disk cannot be imported into KVM.
import { APPLIANCE_PROPERTIES } from '../../daemon/src/appliance/properties.js';

/**
 * vmx-14: ESXi 6.7 and later and Workstation 15 and later run it, and it has everything this
 * appliance uses (EFI, VMXNET3, PVSCSI). A newer version would only lock out older hosts.
 */
export const VIRTUAL_HARDWARE = 'vmx-14';

export interface DiskFile {
  /** The VMDK's name in the OVA. */
  file: string;
  /** Its size in bytes (the References' ovf:size). */
  fileBytes: number;
  /** The disk's virtual size. */
  capacityBytes: number;
  populatedBytes?: number;
}

export interface DescriptorInput {
  name: string;
  version: string;
  systemDisk: DiskFile;
  storeDisk: DiskFile;
  cpus: number;
  memoryMiB: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const STREAM_OPTIMIZED = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

interface Item {
  [rasd: string]: string | number | boolean;
}

/** rasd elements must come in the schema's (alphabetical) order. */
const RASD_ORDER = [
  'Address', 'AddressOnParent', 'AllocationUnits', 'AutomaticAllocation', 'Caption', 'Connection', 'Description',
  'ElementName', 'HostResource', 'InstanceID', 'Parent', 'ResourceSubType', 'ResourceType', 'VirtualQuantity',
];

function item(fields: Item): string {
  for (const k of Object.keys(fields)) if (!RASD_ORDER.includes(k)) throw new Error(`unknown rasd field ${k}`);
  const inner = RASD_ORDER.filter((k) => k in fields).map((k) => `        <rasd:${k}>${esc(String(fields[k]))}</rasd:${k}>`);
  return `      <Item>\n${inner.join('\n')}\n      </Item>`;
}

function property(p: (typeof APPLIANCE_PROPERTIES)[number]): string {
  const qualifiers = p.choices ? ` ovf:qualifiers="${esc(`ValueMap{${p.choices.map((c) => `"${c}"`).join(',')}}`)}"` : '';
  return [
    `      <Property ovf:key="${esc(p.key)}" ovf:type="string" ovf:userConfigurable="true" ovf:value="${esc(p.value)}"${qualifiers}${p.secret ? ' ovf:password="true"' : ''}>`,
    `        <Label>${esc(p.label)}</Label>`,
    `        <Description>${esc(p.description)}</Description>`,
    '      </Property>',
  ].join('\n');
}

/** A Disk of whole GiB when the capacity is one (VMware shows it so), of bytes otherwise. */
function disk(id: string, fileId: string, f: DiskFile): string {
  const whole = f.capacityBytes % 2 ** 30 === 0;
  const capacity = whole ? `ovf:capacity="${f.capacityBytes / 2 ** 30}" ovf:capacityAllocationUnits="byte * 2^30"` : `ovf:capacity="${f.capacityBytes}"`;
  const populated = f.populatedBytes ? ` ovf:populatedSize="${f.populatedBytes}"` : '';
  return `    <Disk ovf:diskId="${id}" ovf:fileRef="${fileId}" ${capacity}${populated} ovf:format="${STREAM_OPTIMIZED}"/>`;
}

export function ovfDescriptor(d: DescriptorInput): string {
  const scsi = 3;
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
    xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
    xmlns:vmw="http://www.vmware.com/schema/ovf"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:id="system-disk" ovf:href="${esc(d.systemDisk.file)}" ovf:size="${d.systemDisk.fileBytes}"/>
    <File ovf:id="store-disk" ovf:href="${esc(d.storeDisk.file)}" ovf:size="${d.storeDisk.fileBytes}"/>
  </References>
  <DiskSection>
    <Info>The system disk, and an empty disk for the capture store (grow it before first boot)</Info>
${disk('system', 'system-disk', d.systemDisk)}
${disk('store', 'store-disk', d.storeDisk)}
  </DiskSection>
  <NetworkSection>
    <Info>Management and capture networks</Info>
    <Network ovf:name="Management">
      <Description>SSH and the metrics endpoint</Description>
    </Network>
    <Network ovf:name="Capture">
      <Description>The mirror (SPAN) port or tap: allow promiscuous mode on this port group</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="${esc(d.name)}">
    <Info>Qe-Packets full packet capture appliance</Info>
    <Name>${esc(d.name)}</Name>
    <AnnotationSection>
      <Info>About this appliance</Info>
      <Annotation>Qe-Packets ${esc(d.version)}: every packet of the capture network to standard pcap files. The web console and API on https://MANAGEMENT-ADDRESS:8443 (a self-signed certificate made at first boot: compare its SHA-256 fingerprint with the one qe-packets status shows; tokens: qe-packets token create); metrics on port 9464; see the README.</Annotation>
    </AnnotationSection>
    <ProductSection ovf:required="false">
      <Info>Appliance settings, applied at first boot</Info>
      <Product>Qe-Packets</Product>
      <Vendor>Qualevent</Vendor>
      <Version>${esc(d.version)}</Version>
      <FullVersion>${esc(d.version)}</FullVersion>
${APPLIANCE_PROPERTIES.map(property).join('\n')}
    </ProductSection>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian12_64Guest">
      <Info>Debian 12 (64-bit)</Info>
      <Description>Debian GNU/Linux 12 (bookworm) 64-bit</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection ovf:transport="com.vmware.guestInfo iso">
      <Info>${d.cpus} vCPUs, ${d.memoryMiB} MiB, PVSCSI disks, two VMXNET3 NICs, EFI</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>${esc(d.name)}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>${VIRTUAL_HARDWARE}</vssd:VirtualSystemType>
      </System>
${[
  item({ AllocationUnits: 'hertz * 10^6', Description: 'Number of virtual CPUs', ElementName: `${d.cpus} virtual CPUs`, InstanceID: 1, ResourceType: 3, VirtualQuantity: d.cpus }),
  item({ AllocationUnits: 'byte * 2^20', Description: 'Memory', ElementName: `${d.memoryMiB} MiB of memory`, InstanceID: 2, ResourceType: 4, VirtualQuantity: d.memoryMiB }),
  item({ Address: 0, Description: 'SCSI controller', ElementName: 'SCSI controller 0', InstanceID: scsi, ResourceSubType: 'VirtualSCSI', ResourceType: 6 }),
  item({ AddressOnParent: 0, ElementName: 'System disk', HostResource: 'ovf:/disk/system', InstanceID: 4, Parent: scsi, ResourceType: 17 }),
  item({ AddressOnParent: 1, ElementName: 'Capture store disk', HostResource: 'ovf:/disk/store', InstanceID: 5, Parent: scsi, ResourceType: 17 }),
  item({ AddressOnParent: 7, AutomaticAllocation: true, Connection: 'Management', Description: 'Management NIC (SSH, metrics)', ElementName: 'Management', InstanceID: 6, ResourceSubType: 'VmxNet3', ResourceType: 10 }),
  item({ AddressOnParent: 8, AutomaticAllocation: true, Connection: 'Capture', Description: 'Capture NIC (mirror port or tap)', ElementName: 'Capture', InstanceID: 7, ResourceSubType: 'VmxNet3', ResourceType: 10 }),
].join('\n')}
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="tools.syncTimeWithHost" vmw:value="false"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}
