# The Packer plugin that vault-stork.pkr.hcl needs. Install it once with
#
#   packer init packer/plugins.pkr.hcl
#
# It is a file of its own because Packer 1.6 (Debian 12's packer package,
# which scripts/kit-checks.sh validates the template with) bundles the
# amazon builder and rejects the required_plugins block, while Packer 1.10
# and later ship no builders and need it for `packer init`.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      version = ">= 1.2.0, < 2.0.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
