# Provisioning: the .deb and the appliance roles through ansible/site.yml, then the build key goes.

build {
  sources = ["source.qemu.appliance"]

  provisioner "file" {
    source      = var.deb
    destination = "/tmp/qe-packets.deb"
  }

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/site.yml"
    user          = "root"
    # OpenSSH 9.2 on Debian 12 dropped the legacy scp protocol Packer's proxy speaks.
    use_proxy = false
    extra_arguments = [
      "--extra-vars", "qe_packets_deb=/tmp/qe-packets.deb qe_packets_image_build=true",
    ]
  }

  provisioner "shell" {
    inline = [
      "rm -f /tmp/qe-packets.deb /root/.ssh/authorized_keys",
      "passwd --lock root",
      "truncate -s 0 /etc/machine-id",
      "rm -f /etc/ssh/ssh_host_*",
      "fstrim -av || true",
    ]
  }
}
