# The base disk booted by QEMU (UEFI through OVMF in qemuargs: Packer 1.6.6 has no efi_* options).

locals {
  image_name = "qe-packets-${var.version}"
}

source "qemu" "appliance" {
  disk_image       = true
  iso_url          = var.base_image
  iso_checksum     = "sha256:${var.base_image_sha256}"
  use_backing_file = false
  output_directory = var.output_directory
  vm_name          = "${local.image_name}.raw"
  format           = "raw"
  disk_size        = var.disk_size
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  accelerator      = var.accelerator
  headless         = true
  memory           = var.memory
  cpus             = var.cpus
  boot_wait        = var.boot_wait
  # A -drive here replaces every drive Packer would add: the system disk is named too.
  qemuargs = [
    ["-drive", "file=${var.output_directory}/${local.image_name}.raw,if=virtio,format=raw,cache=unsafe,discard=unmap"],
    ["-drive", "if=pflash,format=raw,readonly=on,file=${var.ovmf_code}"],
    ["-drive", "if=pflash,format=raw,file=${var.ovmf_vars}"],
    ["-serial", "file:${var.serial_log}"],
    # The build script watches the guest's run state here: a guest QEMU has stopped (KVM internal
    # error) never answers SSH, and Packer would wait for it until ssh_timeout.
    ["-qmp", "unix:${var.qmp_socket},server=on,wait=off"],
  ]
  communicator         = "ssh"
  ssh_username         = "root"
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.ssh_timeout
  shutdown_command     = "systemctl poweroff"
}
