# Provisioning: the .deb and the appliance roles through ansible/site.yml, then the build key goes.

build {
  sources = ["source.qemu.appliance"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/site.yml"
    user          = "root"
    groups        = ["qe_packets"]
    # OpenSSH 9.2 on Debian 12 dropped the legacy scp protocol Packer's proxy speaks.
    use_proxy = false
    # Interfaces and disks are the appliance's own, known at first boot (qe-packets firstboot):
    # the image gets the package, the hardening and the tuning, not a store.
    # Management networks are unknown when the image is built: SSH and the metrics port stay
    # reachable from any address (nothing else is open), until the operator narrows them; the
    # metrics listen on all addresses so a Prometheus on the management network can scrape them.
    # JSON, so that booleans stay booleans (key=value extra vars are all strings).
    extra_arguments = [
      "--extra-vars", "{\"qe_packets_deb\": \"${var.deb}\", \"qe_packets_validate_config\": false, \"qe_packets_start\": false, \"qe_packets_firstboot\": true, \"storage_enabled\": false, \"hardening_management_networks\": [\"0.0.0.0/0\", \"::/0\"], \"capture_tuning_interfaces\": [], \"qe_packets_metrics_listen\": \"0.0.0.0:9464\", \"qe_packets_api\": {\"listen\": \"0.0.0.0:8443\", \"tls_cert\": null, \"tls_key\": null, \"max_extractions\": 2}}",
    ]
  }

  provisioner "shell" {
    inline = [
      "rm -f /root/.ssh/authorized_keys",
      "passwd --lock root",
      "truncate -s 0 /etc/machine-id",
      "rm -f /etc/ssh/ssh_host_*",
      "fstrim -av || true",
    ]
  }
}
