# Inputs of the appliance build. image/ (TypeScript) passes them; see README "Appliance images".

variable "version" {
  type        = string
  description = "Appliance version, from package.json"
}

variable "base_image" {
  type        = string
  description = "The base raw disk made by image/ (debootstrap, GPT, BIOS and UEFI boot)"
}

variable "base_image_sha256" {
  type        = string
  description = "sha256 of the base raw disk (the build script computes it)"
}

variable "deb" {
  type        = string
  description = "The qe-packets_VERSION_amd64.deb to install"
}

variable "output_directory" {
  type    = string
  default = "build/packer"
}

variable "accelerator" {
  type        = string
  default     = "tcg"
  description = "kvm where a short probe of this guest ran under KVM, tcg otherwise (set by the build script, image/src/accel.ts)"
}

variable "serial_log" {
  type        = string
  default     = "build/packer-serial.log"
  description = "The guest's serial console, outside output_directory so it outlives a failed build"
}

variable "qmp_socket" {
  type        = string
  default     = "build/packer-qmp.sock"
  description = "QEMU's QMP socket: the build script reads the guest's run state from it"
}

variable "disk_size" {
  type    = string
  default = "4096M"
}

variable "memory" {
  type    = number
  default = 2048
}

variable "cpus" {
  type    = number
  default = 2
}

variable "ovmf_code" {
  type    = string
  default = "/usr/share/OVMF/OVMF_CODE.fd"
}

variable "ovmf_vars" {
  type        = string
  description = "A writable copy of OVMF_VARS for this build"
}

variable "ssh_private_key_file" {
  type        = string
  description = "Build-only key: the base image carries its public half for root, and the build removes it"
}

variable "boot_wait" {
  type    = string
  default = "10s"
}

variable "ssh_timeout" {
  type        = string
  default     = "30m"
  description = "Generous: a TCG boot takes minutes; the build script stops a stuck guest long before (console-watch.ts)"
}
