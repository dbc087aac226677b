# For current Packer (1.7+), whose builders are plugins: `packer init packer/plugins`. Kept apart
# from the build folder because Packer 1.6.6 (Debian 12) rejects a required_plugins block.
packer {
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
    ansible = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/ansible"
    }
  }
}
