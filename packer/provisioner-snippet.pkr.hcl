# The vault-stork provisioners for an existing amazon-ebs template: paste the
# lines between the BEGIN and END markers into your build block. They upload
# the static binary and the kit, run scripts/install.sh as root, and fail
# the build if the build instance has a nonce. packer/vault-stork.pkr.hcl
# uses the same lines, and scripts/kit-checks.sh checks that they match.
#
# Declare these variables in your template (copy their blocks from
# packer/vault-stork.pkr.hcl): vault_addr, vault_auth_method, vault_role,
# vault_auth_mount, vault_token_group, vault_stork_binary, vault_stork_kit.
#
# The source AMI needs /bin/sh, and sudo for the SSH user, as the Debian,
# Ubuntu and Amazon Linux AMIs have. This file is not a template of its own:
# pass packer/vault-stork.pkr.hcl to Packer, not the packer/ directory.

build {
  # BEGIN vault-stork provisioners
  provisioner "shell" {
    inline = ["mkdir -p /tmp/vault-stork-kit/scripts /tmp/vault-stork-kit/dist/systemd"]
  }

  provisioner "file" {
    source      = var.vault_stork_binary
    destination = "/tmp/vault-stork-kit/vault-stork"
  }

  provisioner "file" {
    source      = "${var.vault_stork_kit}/scripts/install.sh"
    destination = "/tmp/vault-stork-kit/scripts/install.sh"
  }

  provisioner "file" {
    source      = "${var.vault_stork_kit}/dist/systemd/vault-stork.service"
    destination = "/tmp/vault-stork-kit/dist/systemd/vault-stork.service"
  }

  provisioner "file" {
    source      = "${var.vault_stork_kit}/dist/systemd/vault-stork.timer"
    destination = "/tmp/vault-stork-kit/dist/systemd/vault-stork.timer"
  }

  provisioner "file" {
    source      = "${var.vault_stork_kit}/dist/stork.env.example"
    destination = "/tmp/vault-stork-kit/dist/stork.env.example"
  }

  provisioner "file" {
    source      = "${var.vault_stork_kit}/dist/vault-stork.1"
    destination = "/tmp/vault-stork-kit/dist/vault-stork.1"
  }

  # The values travel as environment variables, which Packer quotes, so no
  # value can change the command line; install.sh validates each one.
  provisioner "shell" {
    environment_vars = [
      "VAULT_ADDR=${var.vault_addr}",
      "STORK_METHOD=${var.vault_auth_method}",
      "STORK_ROLE=${var.vault_role}",
      "STORK_MOUNT=${var.vault_auth_mount}",
      "STORK_TOKEN_GROUP=${var.vault_token_group}",
    ]
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} sh {{ .Path }}"
    inline = [
      "set -eu",
      "set -- --binary /tmp/vault-stork-kit/vault-stork --vault-addr \"$VAULT_ADDR\" --method \"$STORK_METHOD\" --mount \"$STORK_MOUNT\" --token-group \"$STORK_TOKEN_GROUP\"",
      "if [ -n \"$STORK_ROLE\" ]; then set -- \"$@\" --role \"$STORK_ROLE\"; fi",
      "sh /tmp/vault-stork-kit/scripts/install.sh \"$@\"",
      "rm -rf /tmp/vault-stork-kit",
      # A nonce on the build instance belongs to the build instance, and an
      # AMI that carried it would hand one nonce to every instance.
      "if [ -e /var/lib/stork/nonce ]; then echo 'vault-stork: /var/lib/stork/nonce exists on the build instance; an AMI must not carry a nonce' >&2; exit 1; fi",
    ]
  }
  # END vault-stork provisioners
}
