#!/usr/bin/env bash
# Build the release tarball: the static binary, its SHA-256, the AMI baking
# kit (scripts/install.sh, dist/, packer/), README.md, LICENSE and the
# licenses of the Rust crates built into the binary.
#
# Usage: scripts/dist.sh [--binary PATH] [--out DIR]
#        scripts/dist.sh crate-licenses
#
# Writes OUT/vault-stork-VERSION-x86_64-linux-musl.tar.gz (OUT defaults to
# dist/out), with VERSION from Cargo.toml. The tarball unpacks into one
# directory, from which `sudo scripts/install.sh` installs the binary.
# `crate-licenses` prints the crate list alone (build-deb.sh uses it).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="$repo_root/target/x86_64-unknown-linux-musl/release/vault-stork"
out="$repo_root/dist/out"

log() { printf 'dist: %s\n' "$*"; }
die() {
  printf 'dist: error: %s\n' "$*" >&2
  exit 1
}

# Prints the version field of the [package] section of Cargo.toml.
package_version() {
  sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$repo_root/Cargo.toml" | head -n 1
}

# Prints "NAME VERSION LICENSE" for each crate the binary is built from:
# the normal and build dependencies for the musl target, as Cargo.lock pins
# them. Build scripts and proc macros are listed too, though not linked.
# Needs crates.io when the crates are not in Cargo's cache yet.
crate_licenses() {
  (cd "$repo_root" && cargo metadata --format-version 1 --locked --filter-platform x86_64-unknown-linux-musl) |
    python3 -c '
import json
import sys

metadata = json.load(sys.stdin)
nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
packages = {package["id"]: package for package in metadata["packages"]}
seen = set()
pending = [metadata["resolve"]["root"]]
while pending:
    node = nodes[pending.pop()]
    for dependency in node["deps"]:
        # A kind of None is a normal dependency. Dev dependencies only build tests.
        if any(kind["kind"] != "dev" for kind in dependency["dep_kinds"]) and dependency["pkg"] not in seen:
            seen.add(dependency["pkg"])
            pending.append(dependency["pkg"])
for package in sorted((packages[i] for i in seen), key=lambda p: (p["name"], p["version"])):
    print(package["name"], package["version"], package["license"] or "(no license field)")
'
}

if [[ "${1:-}" == crate-licenses ]]; then
  crate_licenses
  exit 0
fi

while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1; see scripts/dist.sh --help" ;;
  esac
done

[[ -x "$binary" ]] || die "static binary $binary not found; build it with make static or pass --binary PATH"
file_type="$(od -An -c -N4 "$binary" | tr -d ' ')"
[[ "$file_type" == "177ELF" ]] || die "$binary is not an ELF binary"

version="$(package_version)"
[[ -n "$version" ]] || die "no version found in $repo_root/Cargo.toml"
binary_version="$("$binary" --version)"
[[ "$binary_version" == "vault-stork $version" ]] ||
  die "$binary prints version '$binary_version', but Cargo.toml has version $version; rebuild it with make static"

name="vault-stork-$version-x86_64-linux-musl"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/scripts" "$root/dist" "$root/packer"

install -m 0755 "$binary" "$root/vault-stork"
(cd "$root" && sha256sum vault-stork >vault-stork.sha256)
install -m 0755 "$repo_root/scripts/install.sh" "$root/scripts/install.sh"
cp -R "$repo_root/dist/systemd" "$repo_root/dist/cloud-init" "$root/dist/"
cp "$repo_root/dist/stork.env.example" "$repo_root/dist/vault-stork.1" "$repo_root/dist/AMI-BAKING.md" "$root/dist/"
cp "$repo_root"/packer/*.pkr.hcl "$repo_root/packer/README.md" "$root/packer/"
cp "$repo_root/README.md" "$repo_root/LICENSE" "$root/"
{
  echo "Rust crates built into the vault-stork binary, with the license each"
  echo "declares (cargo metadata, from Cargo.lock):"
  echo
  crate_licenses
} >"$root/CRATE-LICENSES.txt"

# Reproducible archive: fixed owner, order and times (the last commit's, or
# SOURCE_DATE_EPOCH).
mtime="${SOURCE_DATE_EPOCH:-$(git -C "$repo_root" log -1 --format=%ct 2>/dev/null || date +%s)}"
mkdir -p "$out"
tarball="$out/$name.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
  -C "$stage" -cf - "$name" | gzip -9n >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
log "wrote $tarball ($(du -h "$tarball" | cut -f1)) and $tarball.sha256"
