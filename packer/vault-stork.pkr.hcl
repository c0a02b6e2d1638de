# An AMI with vault-stork installed: the static binary, the stork user, the
# systemd service and timer, and /etc/stork/stork.env with the Vault
# settings below. Instances started from it log in to Vault at boot.
#
# Run from the repository root, or from an unpacked release tarball with
# -var vault_stork_binary=vault-stork:
#
#   packer init packer/plugins.pkr.hcl
#   packer build -var vault_addr=https://vault.example.com:8200 packer/vault-stork.pkr.hcl
#
# Pass the file, not the directory: packer/provisioner-snippet.pkr.hcl is not
# a template of its own. packer/README.md lists the AWS and Vault
# prerequisites.

variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "AWS region to build the AMI in."
}

variable "source_ami_name" {
  type        = string
  default     = "debian-12-amd64-*"
  description = "Name filter of the source AMI; the most recent match is used. Amazon Linux 2023: al2023-ami-2023.*-x86_64."
}

variable "source_ami_owners" {
  type        = list(string)
  default     = ["136693071363"]
  description = "Accounts that may own the source AMI. 136693071363 is Debian's; use [\"amazon\"] for Amazon Linux."
}

variable "ssh_username" {
  type        = string
  default     = "admin"
  description = "Login user of the source AMI: admin on Debian, ec2-user on Amazon Linux, ubuntu on Ubuntu."
}

variable "instance_type" {
  type        = string
  default     = "t3.micro"
  description = "Instance type of the temporary build instance (x86_64: the binary is built for x86_64 only)."
}

variable "ami_name_prefix" {
  type        = string
  default     = "vault-stork"
  description = "Start of the AMI name; a UTC timestamp follows."
}

variable "vault_addr" {
  type        = string
  description = "Vault or OpenBao address written to /etc/stork/stork.env, e.g. https://vault.example.com:8200."

  validation {
    condition     = substr(var.vault_addr, 0, 8) == "https://" || substr(var.vault_addr, 0, 7) == "http://"
    error_message = "The vault_addr value must be a URL that starts with https:// or http://."
  }
}

variable "vault_auth_method" {
  type        = string
  default     = "ec2"
  description = "AWS auth flavour: ec2 (signed identity document and nonce) or iam (signed STS request)."

  validation {
    condition     = contains(["ec2", "iam"], var.vault_auth_method)
    error_message = "The vault_auth_method value must be ec2 or iam."
  }
}

variable "vault_role" {
  type        = string
  default     = ""
  description = "Vault role; empty means vault-stork's default (the instance profile name for ec2, the IAM role name for iam)."
}

variable "vault_auth_mount" {
  type        = string
  default     = "aws"
  description = "Path the AWS auth method is mounted at on the Vault server."
}

variable "vault_token_group" {
  type        = string
  default     = "stork"
  description = "Group that may read the token file /run/stork/token; created if missing."
}

variable "vault_stork_binary" {
  type        = string
  default     = "target/x86_64-unknown-linux-musl/release/vault-stork"
  description = "Static vault-stork binary to install (make static builds it), relative to the working directory."
}

variable "vault_stork_kit" {
  type        = string
  default     = "."
  description = "Directory that holds scripts/install.sh and dist/: the repository root or an unpacked release."
}

source "amazon-ebs" "vault_stork" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = var.ssh_username
  ami_name      = "${var.ami_name_prefix}-${formatdate("YYYYMMDD-hhmmss", timestamp())}"
  ami_description = "vault-stork: Vault login with the instance's AWS identity at boot"

  source_ami_filter {
    filters = {
      name                = var.source_ami_name
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = var.source_ami_owners
    most_recent = true
  }

  # NOTE: with the amazon plugin 1.2.0 or later, add imds_support = "v2.0"
  # so instances from this AMI answer IMDSv2 only, and a metadata_options
  # block for the build instance. Packer 1.6, which the checks run, knows
  # neither; packer/README.md shows both.

  tags = {
    Name        = var.ami_name_prefix
    vault-stork = "installed"
  }
}

build {
  sources = ["source.amazon-ebs.vault_stork"]

  # packer/provisioner-snippet.pkr.hcl holds a copy of the lines between the
  # BEGIN and END markers, and scripts/kit-checks.sh checks that they match.
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
