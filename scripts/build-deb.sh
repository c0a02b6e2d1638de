#!/usr/bin/env bash
# Build a Debian package of vault-stork with dpkg-deb: the static binary in
# /usr/bin, the systemd units, the man page, the example configuration, and
# maintainer scripts that create the stork user and directories with
# scripts/install.sh --config-only. No maintainer script deletes the nonce.
#
# Usage: scripts/build-deb.sh [--binary PATH] [--out DIR]
#
# Writes OUT/vault-stork_VERSION_amd64.deb (OUT defaults to dist/out), with
# VERSION from Cargo.toml. Set DEB_MAINTAINER to "Name <address>" for the
# Maintainer field.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="$repo_root/target/x86_64-unknown-linux-musl/release/vault-stork"
out="$repo_root/dist/out"
maintainer="${DEB_MAINTAINER:-vault-stork packagers <vault-stork@example.com>}"

log() { printf 'build-deb: %s\n' "$*"; }
die() {
  printf 'build-deb: error: %s\n' "$*" >&2
  exit 1
}

while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1; see scripts/build-deb.sh --help" ;;
  esac
done

[[ -x "$binary" ]] || die "static binary $binary not found; build it with make static or pass --binary PATH"
version="$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$repo_root/Cargo.toml" | head -n 1)"
[[ -n "$version" ]] || die "no version found in $repo_root/Cargo.toml"
binary_version="$("$binary" --version)"
[[ "$binary_version" == "vault-stork $version" ]] ||
  die "$binary prints version '$binary_version', but Cargo.toml has version $version; rebuild it with make static"

# Times inside the package: the last commit's, or SOURCE_DATE_EPOCH, so the
# same tree gives the same package.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo_root" log -1 --format=%ct 2>/dev/null || date +%s)}"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
doc="$root/usr/share/doc/vault-stork"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/man/man1" \
  "$root/usr/share/vault-stork" "$doc/examples/cloud-init" "$root/usr/share/lintian/overrides"

install -m 0755 "$binary" "$root/usr/bin/vault-stork"

# The units as install.sh installs them, but for the binary in /usr/bin.
for unit in vault-stork.service vault-stork.timer; do
  sed 's|/usr/local/bin/vault-stork|/usr/bin/vault-stork|g' "$repo_root/dist/systemd/$unit" >"$root/lib/systemd/system/$unit"
  chmod 0644 "$root/lib/systemd/system/$unit"
done
grep -q '^ExecStart=/usr/bin/vault-stork login$' "$root/lib/systemd/system/vault-stork.service" ||
  die "ExecStart of dist/systemd/vault-stork.service no longer reads /usr/local/bin/vault-stork login; update the sed above"

gzip -9n <"$repo_root/dist/vault-stork.1" >"$root/usr/share/man/man1/vault-stork.1.gz"
install -m 0755 "$repo_root/scripts/install.sh" "$root/usr/share/vault-stork/install.sh"
install -m 0644 "$repo_root/dist/stork.env.example" "$root/usr/share/vault-stork/stork.env.example"
install -m 0644 "$repo_root/dist/stork.env.example" "$doc/examples/stork.env.example"
install -m 0644 "$repo_root"/dist/cloud-init/*.yaml "$doc/examples/cloud-init/"
gzip -9n <"$repo_root/README.md" >"$doc/README.md.gz"
gzip -9n <"$repo_root/dist/AMI-BAKING.md" >"$doc/AMI-BAKING.md.gz"
install -m 0644 "$repo_root/dist/debian/lintian-overrides" "$root/usr/share/lintian/overrides/vault-stork"

{
  cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vault-stork
Comment: The binary is linked statically with these Rust crates, each under
 the license it declares (cargo metadata, from Cargo.lock):
EOF
  "$repo_root/scripts/dist.sh" crate-licenses | sed 's/^/  /; s/^  $/ ./'
  cat <<EOF

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) vault-stork contributors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
} >"$doc/copyright"

{
  cat <<EOF
vault-stork ($version) unstable; urgency=medium

  * Built from the vault-stork repository by scripts/build-deb.sh.

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
} | gzip -9n >"$doc/changelog.gz"

for script in postinst prerm postrm; do
  install -m 0755 "$repo_root/dist/debian/$script" "$root/DEBIAN/$script"
done

installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<EOF
Package: vault-stork
Version: $version
Architecture: amd64
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: passwd
Section: admin
Priority: optional
Description: Vault login for EC2 instances with the AWS auth method
 vault-stork logs an EC2 instance in to HashiCorp Vault or OpenBao with the
 AWS auth method, using the signed identity document from the instance
 metadata service (ec2) or a signed STS request (iam), and writes the Vault
 token to /run/stork/token for the applications on the instance.
 .
 The package creates the stork user, keeps the login nonce in
 /var/lib/stork, and enables a systemd service that logs in at boot and a
 timer that renews the token. It starts nothing on installation: set
 VAULT_ADDR in /etc/stork/stork.env first. The nonce is never removed, not
 even on purge.
EOF

(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb="$out/vault-stork_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
log "wrote $deb ($(du -h "$deb" | cut -f1))"
