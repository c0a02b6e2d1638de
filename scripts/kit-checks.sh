#!/usr/bin/env bash
# Check the AMI baking kit (scripts/install.sh, dist/, packer/) with the real
# validator of each format.
#
# Usage:
#   scripts/kit-checks.sh deps [--rebuild-rootfs]
#                                install the tools and build the Debian root
#                                filesystem (again, with --rebuild-rootfs);
#                                needs the package mirror, so run it outside
#                                the network namespace
#   scripts/kit-checks.sh lint   run the validators; run it under
#                                scripts/in-netns.sh, so no validator can
#                                reach AWS or IMDS
#
# Everything is cached in ${VAULT_STORK_CACHE:-~/.cache/vault-stork}: the
# Python virtual environment with python-hcl2, a tarball of a debootstrap'd
# Debian 12 root with systemd, man-db and cloud-init, and a BusyBox with
# adduser. `deps` writes $CACHE/kit.env, which `lint` and
# tests/e2e/test_install_kit.py read.
#
# The tests that install into that root (tests/e2e/test_install_kit.py) run
# with pytest: `make test-kit` runs both.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VAULT_STORK_CACHE:-$HOME/.cache/vault-stork}"
kit_env="$cache/kit.env"
static_bin="${VAULT_STORK_STATIC_BIN:-$repo_root/target/x86_64-unknown-linux-musl/release/vault-stork}"

# Debian 12 packages of the validators. apt installs what bookworm serves,
# because a Debian point release removes the older package versions from
# the mirror. After the install, the upstream versions are compared with
# those the checks were written against, and a difference is reported.
apt_packages=(packer debootstrap shellcheck mandoc busybox-static lintian)
declare -A expected_versions=(
  [packer]="1.6.6"
  [shellcheck]="0.9.0"
  [mandoc]="1.14.6"
  [lintian]="2.116"
)

# python-hcl2 and its dependencies, pinned, for a second HCL2 parser.
hcl2_requirements=("python-hcl2==8.1.4" "lark==1.3.1" "regex==2026.12.2")

# The root filesystem: debootstrap minbase, plus systemd (for the units and
# systemd-analyze), man-db (systemd-analyze verify resolves man: links) and
# cloud-init (for `cloud-init schema`). cloud-init is installed with apt in
# the chroot because debootstrap does not resolve virtual packages that its
# dependencies need (python3-cffi-backend-api-max).
debian_suite=bookworm
debian_mirror="${STORK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
rootfs_includes=systemd,man-db
rootfs_apt_packages=(cloud-init)
rootfs_recipe_version=1

# BusyBox with adduser and addgroup, the tools install.sh uses on Alpine.
# Debian's busybox-static leaves them out, so this builds Debian 12's BusyBox
# source (upstream defconfig, linked statically) once into the cache. The
# source comes with `apt-get source` from a private apt configuration under
# the cache, so the host's sources.list stays as it is. The build was
# written against 1.35.0, the version bookworm has.
busybox_recipe_version=1

log() { printf 'kit-checks: %s\n' "$*"; }

# --- deps ------------------------------------------------------------------

install_apt_packages() {
  local missing=() package
  for package in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]})); then
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "system packages present: ${apt_packages[*]}"
  fi
  local version
  for package in "${!expected_versions[@]}"; do
    version="$(dpkg-query -W -f='${Version}' "$package")"
    case "$version" in
      "${expected_versions[$package]}"*) ;;
      *) log "warning: $package is $version, the checks were written against ${expected_versions[$package]}" ;;
    esac
  done
}

make_hcl2_venv() {
  local hash venv
  hash="$(printf '%s\n' "${hcl2_requirements[@]}" | sha256sum | cut -c1-16)"
  venv="$cache/kit-venv-$hash"
  if [[ -f "$venv/.complete" ]]; then
    log "python venv present: $venv"
  else
    log "creating python venv: $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${hcl2_requirements[@]}"
    touch "$venv/.complete"
  fi
  kit_venv="$venv"
}

build_rootfs() {
  local recipe hash build root
  recipe="$debian_suite minbase $rootfs_includes ${rootfs_apt_packages[*]} $rootfs_recipe_version"
  hash="$(printf '%s\n' "$recipe" | sha256sum | cut -c1-16)"
  mkdir -p "$cache/rootfs"
  rootfs_tar="$cache/rootfs/debian-$debian_suite-$hash.tar"
  if [[ -f "$rootfs_tar" && "$rebuild_rootfs" == no ]]; then
    log "root filesystem present: $rootfs_tar"
    return
  fi

  log "building root filesystem ($recipe; about 2 minutes): $rootfs_tar"
  build="$(mktemp -d "$cache/rootfs/build.XXXXXX")"
  root="$build/root"
  if ! debootstrap --variant=minbase --include="$rootfs_includes" "$debian_suite" "$root" "$debian_mirror" \
    >"$build/debootstrap.log" 2>&1; then
    log "error: debootstrap failed; its log follows (also in $build/debootstrap.log)"
    tail -n 40 "$build/debootstrap.log" >&2
    exit 1
  fi
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  if ! chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${rootfs_apt_packages[*]} && apt-get clean" \
    >"$build/apt.log" 2>&1; then
    log "error: installing ${rootfs_apt_packages[*]} in the root failed; its log follows (also in $build/apt.log)"
    tail -n 40 "$build/apt.log" >&2
    exit 1
  fi
  : >"$root/etc/resolv.conf"
  rm -rf "$root/var/lib/apt/lists/"*
  tar --numeric-owner -C "$root" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$build"
  log "root filesystem ready: $rootfs_tar ($(du -h "$rootfs_tar" | cut -f1))"
}

build_busybox() {
  local dir="$cache/busybox-$debian_suite-$busybox_recipe_version" apt_dir source_dir orig
  busybox_bin="$dir/busybox"
  if [[ -x "$busybox_bin" ]]; then
    log "busybox with adduser present: $busybox_bin"
    return
  fi

  log "building busybox from Debian $debian_suite's source with adduser (about 2 minutes): $busybox_bin"
  rm -rf "$dir"
  apt_dir="$dir/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dir/src"
  echo "deb-src $debian_mirror $debian_suite main" >"$apt_dir/sources.list"
  local apt_options=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    # The files are root's, so the _apt user could not write them.
    -o APT::Sandbox::User=root
  )
  apt-get "${apt_options[@]}" update -qq
  (cd "$dir/src" && apt-get "${apt_options[@]}" source --download-only -qq busybox 2>"$dir/apt-source.log") || {
    log "error: apt-get source busybox failed:"
    cat "$dir/apt-source.log" >&2
    exit 1
  }
  orig="$(echo "$dir"/src/busybox_*.orig.tar.bz2)"
  [[ -f "$orig" ]] || { log "error: no busybox_*.orig.tar.bz2 in $dir/src"; exit 1; }
  tar -C "$dir/src" -xjf "$orig"
  source_dir="$(echo "$dir"/src/busybox-*/)"
  log "busybox source: $(basename "$orig")"
  (
    cd "$source_dir"
    make defconfig >"$dir/build.log" 2>&1
    sed -i 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/' .config
    make -j"$(nproc)" >>"$dir/build.log" 2>&1
  ) || {
    log "error: building busybox failed; the end of $dir/build.log follows"
    tail -n 30 "$dir/build.log" >&2
    exit 1
  }
  "$source_dir/busybox" --list | grep -qx adduser || { log "error: the busybox built lacks adduser"; exit 1; }
  cp "$source_dir/busybox" "$busybox_bin.tmp"
  mv "$busybox_bin.tmp" "$busybox_bin"
  rm -rf "$dir/src" "$apt_dir"
}

deps() {
  mkdir -p "$cache"
  install_apt_packages
  make_hcl2_venv
  build_rootfs
  build_busybox
  # The .deb's copyright file lists the crates from `cargo metadata`, which
  # needs crates.io the first time; later runs, in the network namespace
  # too, use Cargo's cache.
  "$repo_root/scripts/dist.sh" crate-licenses >/dev/null
  cat >"$kit_env.tmp" <<ENV
export STORK_KIT_VENV='$kit_venv'
export STORK_KIT_ROOTFS='$rootfs_tar'
export STORK_KIT_BUSYBOX='$busybox_bin'
ENV
  mv "$kit_env.tmp" "$kit_env"
  log "wrote $kit_env"
}

# --- lint ------------------------------------------------------------------

passed=0
failed=0
failures=()

# Runs check function $1 with its output indented, and counts the result.
run_check() {
  local name="$1"
  local output status
  # errexit is ignored in any function called from a || list, so the check
  # runs in a subshell that sets it again, outside such a list.
  set +e
  output="$(
    set -e
    "$name" 2>&1
  )"
  status=$?
  set -e
  if ((status == 0)); then
    passed=$((passed + 1))
    log "ok     $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    log "FAILED $name (exit code $status)"
  fi
  if [[ -n "$output" ]]; then
    printf '%s\n' "$output" | sed 's/^/    /'
  fi
}

# Extracts the cached root filesystem into a new directory under $work and
# prints its path.
extract_rootfs() {
  local root
  root="$(mktemp -d "$work/root.XXXXXX")"
  tar --numeric-owner -C "$root" -xf "$STORK_KIT_ROOTFS"
  printf '%s\n' "$root"
}

check_shell_scripts() {
  shellcheck -s sh "$repo_root/scripts/install.sh" "$repo_root"/dist/debian/{postinst,prerm,postrm}
  shellcheck "$repo_root"/scripts/{build-deb,dist,kit-checks}.sh
  # install.sh must parse in the shells of the systems it supports: dash
  # (Debian, Ubuntu), bash (Amazon Linux, RHEL) and BusyBox ash (Alpine).
  dash -n "$repo_root/scripts/install.sh"
  bash --posix -n "$repo_root/scripts/install.sh"
  busybox sh -n "$repo_root/scripts/install.sh"
}

check_unit_security() {
  # systemd-analyze rates each sandboxing setting; 12 is the exposure of the
  # unit as written (1.2 on systemd's 0 to 10 scale), so a dropped setting
  # fails the check.
  systemd-analyze security --offline=true --threshold=12 --no-pager \
    "$repo_root/dist/systemd/vault-stork.service" | tail -n 1
}

check_man_page() {
  mandoc -Tlint -W style "$repo_root/dist/vault-stork.1"
}

# Every flag and variable of `vault-stork login --help`, and every exit code
# of `vault-stork --help`, must appear in the man page and (variables) in
# stork.env.example.
check_options_documented() {
  [[ -x "$static_bin" ]] || { echo "static binary $static_bin not found; run make static"; return 1; }
  local help flag variable code undocumented=0
  help="$("$static_bin" login --help)"
  while read -r flag; do
    if ! grep -qF -- "${flag//-/\\-}" "$repo_root/dist/vault-stork.1"; then
      echo "dist/vault-stork.1 does not describe $flag"
      undocumented=1
    fi
  done < <(grep -oE '^  (-[a-z], )?--[a-z0-9-]+' <<<"$help" | grep -oE -- '--[a-z0-9-]+')
  while read -r variable; do
    if ! grep -qE "^#?$variable=" "$repo_root/dist/stork.env.example"; then
      echo "dist/stork.env.example does not document $variable"
      undocumented=1
    fi
    if ! grep -qF "$variable" "$repo_root/dist/vault-stork.1"; then
      echo "dist/vault-stork.1 does not name $variable"
      undocumented=1
    fi
  done < <(grep -oE '\[env: [^];]+' <<<"$help" | sed 's/\[env: //; s/, /\n/g')
  while read -r code; do
    if ! grep -qxF ".B $code" "$repo_root/dist/vault-stork.1"; then
      echo "dist/vault-stork.1 does not describe exit code $code"
      undocumented=1
    fi
  done < <("$static_bin" --help | sed -n '/^Exit codes:/,$p' | grep -oE '^ +[0-9]+' | tr -d ' ')
  return "$undocumented"
}

check_packer_validate() {
  [[ -x "$static_bin" ]] || { echo "static binary $static_bin not found; run make static"; return 1; }
  # Packer 1.6.6 validates the amazon-ebs settings offline: it contacts
  # AWS only to build. The network namespace makes sure of that.
  (
    cd "$repo_root"
    CHECKPOINT_DISABLE=1 packer validate \
      -var vault_addr=https://vault.example.com:8200 \
      -var vault_stork_binary="$static_bin" \
      packer/vault-stork.pkr.hcl
    # The variable checks reject what install.sh would reject anyway.
    if CHECKPOINT_DISABLE=1 packer validate -var vault_addr=ftp://vault.example.com \
      -var vault_stork_binary="$static_bin" packer/vault-stork.pkr.hcl >/dev/null 2>&1; then
      echo "packer validate accepted vault_addr=ftp://vault.example.com"
      exit 1
    fi
  )
  echo "packer $(packer version | head -n 1): packer/vault-stork.pkr.hcl is valid"
}

check_packer_snippet_matches() {
  local template="$repo_root/packer/vault-stork.pkr.hcl"
  local snippet="$repo_root/packer/provisioner-snippet.pkr.hcl"
  local begin='# BEGIN vault-stork provisioners' end='# END vault-stork provisioners'
  diff -u \
    <(sed -n "/$begin/,/$end/p" "$template") \
    <(sed -n "/$begin/,/$end/p" "$snippet")
  [[ -n "$(sed -n "/$begin/,/$end/p" "$template")" ]] || { echo "no BEGIN/END markers in $template"; return 1; }
}

check_hcl2_parser() {
  "$STORK_KIT_VENV/bin/python" - "$repo_root/packer" <<'PYTHON'
"""Parse the Packer files with python-hcl2 and check their structure."""
import sys
from pathlib import Path

import hcl2

packer_dir = Path(sys.argv[1])
parsed = {}
for path in sorted(packer_dir.glob("*.pkr.hcl")):
    with path.open() as handle:
        parsed[path.name] = hcl2.load(handle)
    print(f"python-hcl2 {hcl2.__version__ if hasattr(hcl2, '__version__') else ''}: parsed {path.name}")

template = parsed["vault-stork.pkr.hcl"]
variables = {name.strip('"') for block in template["variable"] for name in block}
expected = {"region", "source_ami_name", "instance_type", "vault_addr", "vault_auth_method",
            "vault_role", "vault_auth_mount", "vault_stork_binary", "vault_stork_kit"}
missing = expected - variables
assert not missing, f"vault-stork.pkr.hcl lacks variables {sorted(missing)}"

sources = [kind.strip('"') for block in template["source"] for kind in block]
assert sources == ["amazon-ebs"], f"expected one amazon-ebs source, found {sources}"

provisioners = [kind.strip('"') for build in template["build"] for block in build["provisioner"] for kind in block]
assert provisioners[0] == "shell", f"the first provisioner must create the upload directories: {provisioners}"
assert provisioners[-1] == "shell", f"the last provisioner must run install.sh: {provisioners}"
assert provisioners.count("file") == 6, f"expected 6 file provisioners, found {provisioners}"

plugins = parsed["plugins.pkr.hcl"]["packer"][0]["required_plugins"][0]
# python-hcl2 keeps the quotes of string values.
assert plugins["amazon"]["source"].strip('"') == "github.com/hashicorp/amazon", plugins

snippet = parsed["provisioner-snippet.pkr.hcl"]["build"][0]["provisioner"]
assert len(snippet) == len(provisioners), "the snippet and the template differ in provisioners"
print("structure: variables, amazon-ebs source, provisioners and required_plugins as expected")
PYTHON
}

check_cloud_init_schema() {
  local root example
  root="$(extract_rootfs)"
  mkdir -p "$root/tmp/cloud-init"
  cp "$repo_root"/dist/cloud-init/*.yaml "$root/tmp/cloud-init/"
  chroot "$root" cloud-init --version
  for example in "$repo_root"/dist/cloud-init/*.yaml; do
    chroot "$root" cloud-init schema --config-file "/tmp/cloud-init/$(basename "$example")"
  done
  rm -rf "$root"
}

check_deb_package() {
  [[ -x "$static_bin" ]] || { echo "static binary $static_bin not found; run make static"; return 1; }
  local out="$work/deb"
  mkdir -p "$out"
  "$repo_root/scripts/build-deb.sh" --binary "$static_bin" --out "$out" >/dev/null
  local deb
  deb="$(echo "$out"/*.deb)"
  dpkg-deb --info "$deb" >/dev/null
  # Lintian's checks that do not fit a static binary that one site builds
  # for itself are listed, with the reason, in dist/debian/lintian-overrides.
  # lintian warns on stderr that it runs as root, which CI does.
  lintian --fail-on error,warning --tag-display-limit 0 "$deb" 2>"$work/lintian.stderr"
  echo "$(lintian --version): $(basename "$deb") has no errors or warnings"
}

check_dist_tarball() {
  [[ -x "$static_bin" ]] || { echo "static binary $static_bin not found; run make static"; return 1; }
  local out="$work/dist"
  mkdir -p "$out"
  "$repo_root/scripts/dist.sh" --binary "$static_bin" --out "$out" >/dev/null
  local tarball name
  tarball="$(echo "$out"/*.tar.gz)"
  name="$(basename "$tarball" .tar.gz)"
  mkdir "$out/unpacked"
  tar -C "$out/unpacked" -xzf "$tarball"
  (cd "$out/unpacked/$name" && sha256sum -c vault-stork.sha256)
  for file in vault-stork vault-stork.sha256 README.md LICENSE scripts/install.sh \
    dist/systemd/vault-stork.service dist/systemd/vault-stork.timer dist/stork.env.example \
    dist/vault-stork.1 dist/AMI-BAKING.md dist/cloud-init/user-data.yaml \
    dist/cloud-init/user-data-write-files.yaml packer/vault-stork.pkr.hcl \
    packer/plugins.pkr.hcl packer/provisioner-snippet.pkr.hcl packer/README.md; do
    [[ -f "$out/unpacked/$name/$file" ]] || { echo "$(basename "$tarball") lacks $file"; return 1; }
  done
  # The template works from the unpacked tarball as packer/README.md says.
  (
    cd "$out/unpacked/$name"
    CHECKPOINT_DISABLE=1 packer validate -var vault_addr=https://vault.example.com:8200 \
      -var vault_stork_binary=vault-stork packer/vault-stork.pkr.hcl
  )
  echo "$(basename "$tarball"): checksum, contents and packer validate as expected"
}

lint() {
  [[ -f "$kit_env" ]] || { log "error: $kit_env not found; run scripts/kit-checks.sh deps first"; exit 1; }
  # shellcheck source=/dev/null
  . "$kit_env"
  work="$(mktemp -d "${TMPDIR:-/tmp}/vault-stork-kit-checks.XXXXXX")"
  trap 'rm -rf "$work"' EXIT

  run_check check_shell_scripts
  run_check check_unit_security
  run_check check_man_page
  run_check check_options_documented
  run_check check_packer_validate
  run_check check_packer_snippet_matches
  run_check check_hcl2_parser
  run_check check_cloud_init_schema
  run_check check_deb_package
  run_check check_dist_tarball

  if ((failed)); then
    log "failed checks: ${failures[*]}"
  fi
  echo "kit-checks: $passed passed, $failed failed"
  ((failed == 0))
}

rebuild_rootfs=no
case "${1:-}" in
  deps)
    if [[ "${2:-}" == --rebuild-rootfs ]]; then
      rebuild_rootfs=yes
    elif [[ -n "${2:-}" ]]; then
      echo "usage: scripts/kit-checks.sh deps [--rebuild-rootfs]" >&2
      exit 64
    fi
    deps
    ;;
  lint) lint ;;
  *)
    echo "usage: scripts/kit-checks.sh deps [--rebuild-rootfs] | lint" >&2
    exit 64
    ;;
esac
