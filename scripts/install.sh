#!/bin/sh
# Install vault-stork on this host or into an image root: the static binary,
# the stork user and group, the nonce and token directories, the systemd
# units and /etc/stork/stork.env. Safe to run again: each step reports
# whether it changed anything. Never overwrites the nonce or stork.env.
#
# POSIX sh, for Debian and Ubuntu, Amazon Linux and the RHEL family (shadow
# useradd) and Alpine (BusyBox adduser). Run `install.sh --help`.
set -eu

PROG=install.sh

BINARY_PATH=/usr/local/bin/vault-stork
MAN_PATH=/usr/local/share/man/man1/vault-stork.1
UNIT_DIR=/etc/systemd/system
UNITS="vault-stork.service vault-stork.timer"
DROPIN_DIR=$UNIT_DIR/vault-stork.service.d
DROPIN_FILE=$DROPIN_DIR/token-dir.conf
TMPFILES_FILE=/etc/tmpfiles.d/vault-stork.conf
CONFIG_DIR=/etc/stork
ENV_FILE=$CONFIG_DIR/stork.env
# The token directory and group chosen by the last run, so a later run or
# --uninstall without those flags keeps them.
INSTALL_CONF=$CONFIG_DIR/install.conf
STATE_DIR=/var/lib/stork
DEFAULT_TOKEN_DIR=/run/stork
TOKEN_FILE_NAME=token
SERVICE_USER=stork
SERVICE_GROUP=stork
# Files the binary and the unit keep in the state directory.
STATE_FILES="nonce nonce.lock nonce-mismatch"

usage() {
	cat <<'EOF'
Usage: install.sh [options]
       install.sh --uninstall [--purge] [options]

Install the vault-stork binary, user, directories, systemd units and
configuration. Run as root. Running it again repairs owners and modes and
replaces the binary and units; it never overwrites the nonce or
/etc/stork/stork.env.

Options:
  --binary PATH       static binary to install (default: ./vault-stork)
  --kit DIR           directory with systemd/, stork.env.example and
                      vault-stork.1 (default: dist/ beside this script's
                      directory)
  --root DIR          install into the image root DIR: copy this script, the
                      kit and the binary into DIR/tmp and run there with
                      chroot, so DIR's own useradd and systemctl are used
  --token-dir DIR     directory for the token file (default: /run/stork, a
                      tmpfs: the token does not survive a reboot). Give a
                      directory on disk to keep the token across reboots.
  --token-group NAME  group that may read the token file; created as a
                      system group if missing (default: stork)
  --vault-addr URL    VAULT_ADDR for a new /etc/stork/stork.env
  --method ec2|iam    STORK_METHOD for a new /etc/stork/stork.env
  --role NAME         STORK_ROLE for a new /etc/stork/stork.env
  --mount PATH        STORK_MOUNT for a new /etc/stork/stork.env
  --no-enable         install the units but do not enable them
  --config-only       create the user, group, directories and configuration,
                      but leave the binary, units and man page alone (the
                      .deb's maintainer scripts use this)
  --uninstall         remove the binary, units, man page, token and
                      generated configuration; keep the nonce, the stork
                      user and /etc/stork
  --purge             with --uninstall, also delete /var/lib/stork with the
                      NONCE, /etc/stork and the stork user and group
  -h, --help          print this help

Nothing is started: the units run at the next boot, or with
`systemctl start vault-stork.service`.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage_error() {
	printf '%s: %s; see install.sh --help\n' "$PROG" "$*" >&2
	exit 64
}

# --- Argument parsing ------------------------------------------------------

binary=./vault-stork
kit_dir=
root_dir=
token_dir=
token_group=
vault_addr=
method=
role=
mount=
enable=yes
config_only=no
action=install
purge=no

# Sets $value to the value of option $1, given as "--opt=value" in $2 or as
# the next argument $3; sets $shift_count to the arguments consumed.
take_value() {
	case $2 in
	--*=*)
		value=${2#*=}
		shift_count=1
		;;
	*)
		[ "$#" -ge 3 ] || usage_error "missing value for $1"
		value=$3
		shift_count=2
		;;
	esac
}

while [ "$#" -gt 0 ]; do
	option=${1%%=*}
	case $option in
	--binary | --kit | --root | --token-dir | --token-group | --vault-addr | --method | --role | --mount)
		take_value "$option" "$@"
		case $option in
		--binary) binary=$value ;;
		--kit) kit_dir=$value ;;
		--root) root_dir=$value ;;
		--token-dir) token_dir=$value ;;
		--token-group) token_group=$value ;;
		--vault-addr) vault_addr=$value ;;
		--method) method=$value ;;
		--role) role=$value ;;
		--mount) mount=$value ;;
		esac
		shift "$shift_count"
		;;
	--no-enable) enable=no; shift ;;
	--config-only) config_only=yes; shift ;;
	--uninstall) action=uninstall; shift ;;
	--purge) purge=yes; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage_error "unknown option $1" ;;
	esac
done

if [ "$purge" = yes ] && [ "$action" != uninstall ]; then
	usage_error "--purge needs --uninstall"
fi

# --- Input checks ----------------------------------------------------------

# Values go into stork.env, which systemd and `sh -c '. FILE'` both read, so
# they are limited to characters that need no quoting in either.
check_env_value() {
	case $2 in
	*[!]A-Za-z0-9._:/@%+,=[-]*)
		usage_error "invalid $1 '$2': use only letters, digits and ._:/@%+,=-[]"
		;;
	esac
}

check_path() {
	case $2 in
	/*) ;;
	*) usage_error "invalid $1 '$2': expected an absolute path" ;;
	esac
	case $2 in
	*[!A-Za-z0-9._/-]*) usage_error "invalid $1 '$2': use only letters, digits and ._/-" ;;
	esac
}

check_name() {
	case $2 in
	'' | -* | *[!A-Za-z0-9._-]*)
		usage_error "invalid $1 '$2': expected a name of letters, digits and ._-"
		;;
	esac
}

[ -z "$vault_addr" ] || check_env_value --vault-addr "$vault_addr"
[ -z "$role" ] || check_env_value --role "$role"
[ -z "$mount" ] || check_env_value --mount "$mount"
case $method in
'' | ec2 | iam) ;;
*) usage_error "invalid --method '$method': expected ec2 or iam" ;;
esac
case $vault_addr in
'' | http://* | https://*) ;;
*) usage_error "invalid --vault-addr '$vault_addr': expected a URL starting with https:// or http://" ;;
esac
[ -z "$token_group" ] || check_name --token-group "$token_group"
if [ -n "$token_dir" ]; then
	check_path --token-dir "$token_dir"
	token_dir=${token_dir%/}
	case $token_dir in
	'' | "$STATE_DIR" | "$STATE_DIR"/* | "$CONFIG_DIR" | "$CONFIG_DIR"/*)
		usage_error "invalid --token-dir '$token_dir': it must be a directory of its own, outside $STATE_DIR and $CONFIG_DIR"
		;;
	esac
fi

[ "$(id -u)" = 0 ] || die "must run as root (try: sudo sh $0 ...)"

script_dir=$(cd "$(dirname "$0")" && pwd)
[ -n "$kit_dir" ] || kit_dir=$script_dir/../dist
needs_files=no
if [ "$action" = install ] && [ "$config_only" = no ]; then
	needs_files=yes
fi
if [ "$action" = install ]; then
	if [ ! -f "$kit_dir/stork.env.example" ]; then
		die "kit directory $kit_dir lacks stork.env.example; pass --kit with the dist/ directory of the repository or release"
	fi
	if [ "$needs_files" = yes ] && [ ! -f "$kit_dir/systemd/vault-stork.service" ]; then
		die "kit directory $kit_dir lacks systemd/vault-stork.service; pass --kit with the dist/ directory of the repository or release"
	fi
	kit_dir=$(cd "$kit_dir" && pwd)
fi
if [ "$needs_files" = yes ]; then
	[ -f "$binary" ] || die "binary $binary not found; pass --binary PATH"
fi

# --- Install into another root with chroot ---------------------------------

# Copies this script, the kit and the binary into ROOT/tmp and runs the copy
# there with chroot, with the same options less --root.
run_in_root() {
	[ -d "$root_dir" ] || die "root directory $root_dir not found"
	[ -x "$root_dir/bin/sh" ] || die "$root_dir/bin/sh not found: --root needs an image root with a shell"
	command -v chroot >/dev/null || die "chroot not found"

	stage_name=vault-stork-install.$$
	stage=$root_dir/tmp/$stage_name
	mkdir -p "$root_dir/tmp"
	rm -rf "$stage"
	mkdir -m 0700 "$stage" "$stage/scripts"
	trap 'rm -rf "$stage"' EXIT
	trap 'exit 130' INT TERM
	cp "$0" "$stage/scripts/install.sh"

	set -- --kit "/tmp/$stage_name/dist"
	if [ "$action" = install ]; then
		mkdir "$stage/dist"
		[ ! -d "$kit_dir/systemd" ] || cp -R "$kit_dir/systemd" "$stage/dist/systemd"
		cp "$kit_dir/stork.env.example" "$stage/dist/"
		[ ! -f "$kit_dir/vault-stork.1" ] || cp "$kit_dir/vault-stork.1" "$stage/dist/"
	fi
	if [ "$needs_files" = yes ]; then
		cp "$binary" "$stage/vault-stork"
		set -- "$@" --binary "/tmp/$stage_name/vault-stork"
	fi
	[ -z "$token_dir" ] || set -- "$@" --token-dir "$token_dir"
	[ -z "$token_group" ] || set -- "$@" --token-group "$token_group"
	[ -z "$vault_addr" ] || set -- "$@" --vault-addr "$vault_addr"
	[ -z "$method" ] || set -- "$@" --method "$method"
	[ -z "$role" ] || set -- "$@" --role "$role"
	[ -z "$mount" ] || set -- "$@" --mount "$mount"
	[ "$enable" = yes ] || set -- "$@" --no-enable
	[ "$config_only" = no ] || set -- "$@" --config-only
	[ "$action" = install ] || set -- "$@" --uninstall
	[ "$purge" = no ] || set -- "$@" --purge

	say "running in $root_dir with chroot"
	status=0
	chroot "$root_dir" /bin/sh "/tmp/$stage_name/scripts/install.sh" "$@" || status=$?
	exit "$status"
}

if [ -n "$root_dir" ]; then
	run_in_root
fi

# --- Helpers ---------------------------------------------------------------

has_systemd() { command -v systemctl >/dev/null 2>&1; }

# True when systemd is the running init, not merely installed (in a chroot
# or an image root it is not).
systemd_running() { [ -d /run/systemd/system ]; }

group_exists() {
	if command -v getent >/dev/null 2>&1; then
		getent group "$1" >/dev/null
	else
		grep -q "^$1:" /etc/group
	fi
}

user_exists() {
	if command -v getent >/dev/null 2>&1; then
		getent passwd "$1" >/dev/null
	else
		grep -q "^$1:" /etc/passwd
	fi
}

nologin_shell() {
	for shell in /usr/sbin/nologin /sbin/nologin /bin/false; do
		if [ -x "$shell" ]; then
			echo "$shell"
			return
		fi
	done
	echo /bin/false
}

create_group() {
	if command -v groupadd >/dev/null 2>&1; then
		groupadd --system "$1"
	elif command -v addgroup >/dev/null 2>&1; then
		addgroup -S "$1"
	else
		die "neither groupadd nor addgroup found; cannot create group $1"
	fi
}

create_user() {
	shell=$(nologin_shell)
	if command -v useradd >/dev/null 2>&1; then
		useradd --system --gid "$SERVICE_GROUP" --home-dir /nonexistent --no-create-home \
			--shell "$shell" --comment "vault-stork" "$SERVICE_USER"
	elif command -v adduser >/dev/null 2>&1; then
		# BusyBox adduser, as on Alpine.
		adduser -S -D -H -h /nonexistent -s "$shell" -G "$SERVICE_GROUP" -g "vault-stork" "$SERVICE_USER"
	else
		die "neither useradd nor adduser found; cannot create user $SERVICE_USER"
	fi
}

delete_user() {
	if command -v userdel >/dev/null 2>&1; then
		userdel "$SERVICE_USER"
	else
		deluser "$SERVICE_USER"
	fi
}

delete_group() {
	if command -v groupdel >/dev/null 2>&1; then
		groupdel "$1"
	else
		delgroup "$1"
	fi
}

# Creates directory $1 if missing and sets its owner $2 and mode $3.
ensure_dir() {
	if [ -d "$1" ]; then
		state=kept
	else
		mkdir -p "$1"
		state=created
	fi
	chown "$2" "$1"
	chmod "$3" "$1"
	say "$state $1 ($2, mode $3)"
}

# Installs file $1 at $2 with mode $3, owned by root, replacing the target
# with a rename so a running binary or a reader never sees half a file.
install_file() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		chown root:root "$2"
		chmod "$3" "$2"
		say "unchanged $2"
		return
	fi
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2.new.$$"
	chown root:root "$2.new.$$"
	chmod "$3" "$2.new.$$"
	mv -f "$2.new.$$" "$2"
	say "installed $2"
}

# Writes the text on stdin to file $1 with mode $2, owned by root, if it
# differs from what is there.
write_file() {
	mkdir -p "$(dirname "$1")"
	cat >"$1.tmp.$$"
	install_file "$1.tmp.$$" "$1" "$2"
	rm -f "$1.tmp.$$"
}

# Prints the value of NAME=value line $1 of install.conf, if any.
recorded() {
	[ -f "$INSTALL_CONF" ] || return 0
	sed -n "s/^$1=//p" "$INSTALL_CONF" | tail -n 1
}

# Prints stork.env.example with the settings given on the command line
# uncommented and set. Values come through the environment, so awk does not
# interpret backslashes in them.
render_env_file() {
	SET_VAULT_ADDR=$vault_addr SET_STORK_METHOD=$method SET_STORK_ROLE=$role SET_STORK_MOUNT=$mount \
		awk '
		BEGIN {
			split("VAULT_ADDR STORK_METHOD STORK_ROLE STORK_MOUNT", names, " ")
			for (i in names) {
				value = ENVIRON["SET_" names[i]]
				if (value != "") wanted[names[i]] = value
			}
		}
		{
			line = $0
			for (name in wanted) {
				if (index(line, "#" name "=") == 1 || index(line, name "=") == 1) {
					if (!(name in done)) { line = name "=" wanted[name]; done[name] = 1 }
				}
			}
			print line
		}
		END {
			for (name in wanted) if (!(name in done)) print name "=" wanted[name]
		}' "$kit_dir/stork.env.example"
}

# Prints the value of NAME in stork.env, if set there.
env_setting() {
	sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1
}

# --- Install ---------------------------------------------------------------

resolve_token_settings() {
	[ -n "$token_dir" ] || token_dir=$(recorded TOKEN_DIR)
	[ -n "$token_dir" ] || token_dir=$DEFAULT_TOKEN_DIR
	[ -n "$token_group" ] || token_group=$(recorded TOKEN_GROUP)
	[ -n "$token_group" ] || token_group=$SERVICE_GROUP
}

install_accounts() {
	if group_exists "$SERVICE_GROUP"; then
		say "kept group $SERVICE_GROUP"
	else
		create_group "$SERVICE_GROUP"
		say "created system group $SERVICE_GROUP"
	fi
	if user_exists "$SERVICE_USER"; then
		say "kept user $SERVICE_USER"
	else
		create_user
		say "created system user $SERVICE_USER (no login shell, no home directory)"
	fi
	if ! group_exists "$token_group"; then
		create_group "$token_group"
		say "created system group $token_group for readers of the token; add the application's user to it"
	fi
}

install_directories() {
	ensure_dir "$CONFIG_DIR" root:root 0755
	ensure_dir "$STATE_DIR" "$SERVICE_USER:$SERVICE_GROUP" 0700
	# A nonce left by an earlier install may belong to a user ID that no
	# longer exists; give it back to stork without touching its contents.
	for name in $STATE_FILES; do
		if [ -e "$STATE_DIR/$name" ]; then
			chown "$SERVICE_USER:$SERVICE_GROUP" "$STATE_DIR/$name"
			say "kept $STATE_DIR/$name"
		fi
	done
	# setgid, so the token file the service creates inherits the group.
	ensure_dir "$token_dir" "$SERVICE_USER:$token_group" 2750
}

install_env_file() {
	if [ -e "$ENV_FILE" ]; then
		say "kept $ENV_FILE (never overwritten)"
		for pair in "VAULT_ADDR:$vault_addr" "STORK_METHOD:$method" "STORK_ROLE:$role" "STORK_MOUNT:$mount"; do
			name=${pair%%:*}
			wanted=${pair#*:}
			if [ -n "$wanted" ] && [ "$(env_setting "$name")" != "$wanted" ]; then
				warn "$ENV_FILE keeps its own $name; edit the file to use '$wanted'"
			fi
		done
	else
		render_env_file >"$ENV_FILE.new.$$"
		chown "root:$SERVICE_GROUP" "$ENV_FILE.new.$$"
		chmod 0640 "$ENV_FILE.new.$$"
		mv "$ENV_FILE.new.$$" "$ENV_FILE"
		say "created $ENV_FILE (root:$SERVICE_GROUP, mode 0640)"
	fi
	if [ -z "$(env_setting VAULT_ADDR)" ]; then
		warn "VAULT_ADDR is not set in $ENV_FILE; set it before the service runs"
	fi
	token_setting=$(env_setting STORK_TOKEN)
	case $token_setting in
	'' | "$token_dir"/*) ;;
	*) warn "$ENV_FILE sets STORK_TOKEN=$token_setting outside $token_dir, which the unit does not allow writes to" ;;
	esac
}

install_recorded_settings() {
	write_file "$INSTALL_CONF" 0644 <<EOF
# Written by vault-stork's install.sh: the choices of its last run, reused
# when a later run does not pass --token-dir or --token-group.
TOKEN_DIR=$token_dir
TOKEN_GROUP=$token_group
EOF
}

install_systemd_config() {
	# /run is emptied at boot; systemd-tmpfiles recreates the directories
	# with their owners and modes before services start.
	write_file "$TMPFILES_FILE" 0644 <<EOF
# Written by vault-stork's install.sh.
d $STATE_DIR 0700 $SERVICE_USER $SERVICE_GROUP -
d $token_dir 2750 $SERVICE_USER $token_group -
EOF
	if [ "$token_dir" = "$DEFAULT_TOKEN_DIR" ]; then
		if [ -e "$DROPIN_FILE" ]; then
			rm -f "$DROPIN_FILE"
			rmdir "$DROPIN_DIR" 2>/dev/null || true
			say "removed $DROPIN_FILE (token directory is $DEFAULT_TOKEN_DIR again)"
		fi
	else
		write_file "$DROPIN_FILE" 0644 <<EOF
# Written by vault-stork's install.sh --token-dir.
[Service]
Environment=STORK_TOKEN=$token_dir/$TOKEN_FILE_NAME
ReadWritePaths=
ReadWritePaths=$STATE_DIR $token_dir
EOF
	fi
}

install_files() {
	tmp_binary=$BINARY_PATH.new.$$
	mkdir -p "$(dirname "$BINARY_PATH")"
	cp "$binary" "$tmp_binary"
	chmod 0755 "$tmp_binary"
	if ! version=$("$tmp_binary" --version 2>&1); then
		rm -f "$tmp_binary"
		die "binary $binary does not run on this system: $version"
	fi
	rm -f "$tmp_binary"
	install_file "$binary" "$BINARY_PATH" 0755
	say "binary: $version"
	if [ -f "$kit_dir/vault-stork.1" ]; then
		install_file "$kit_dir/vault-stork.1" "$MAN_PATH" 0644
	fi
	if has_systemd; then
		for unit in $UNITS; do
			install_file "$kit_dir/systemd/$unit" "$UNIT_DIR/$unit" 0644
		done
	fi
}

enable_units() {
	if systemd_running; then
		systemctl daemon-reload
	fi
	if [ "$enable" = yes ]; then
		# shellcheck disable=SC2086 # UNITS is a list of names
		systemctl --quiet enable $UNITS
		say "enabled $UNITS; nothing was started: they run at the next boot"
	else
		say "left $UNITS disabled (--no-enable)"
	fi
}

do_install() {
	resolve_token_settings
	install_accounts
	install_directories
	install_env_file
	install_recorded_settings
	if has_systemd; then
		install_systemd_config
	else
		say "systemd not found: skipped the units and tmpfiles.d entry; run vault-stork from cloud-init, cron or your init system"
		case $token_dir in
		/run/*) warn "$token_dir is on a tmpfs: create it again at each boot (install -d -m 2750 -o $SERVICE_USER -g $token_group $token_dir)" ;;
		esac
	fi
	if [ "$config_only" = yes ]; then
		say "done (--config-only: binary and units left to the package manager)"
		return
	fi
	install_files
	if has_systemd; then
		enable_units
	fi
	say "done"
}

# --- Uninstall -------------------------------------------------------------

remove_file() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		rm -f "$1"
		say "removed $1"
	fi
}

do_uninstall() {
	resolve_token_settings
	if [ "$config_only" = no ] && has_systemd; then
		for unit in $UNITS; do
			if [ -f "$UNIT_DIR/$unit" ]; then
				if systemd_running; then
					systemctl --quiet stop "$unit" || warn "could not stop $unit"
				fi
				systemctl --quiet disable "$unit" || warn "could not disable $unit"
			fi
		done
	fi
	if [ "$config_only" = no ]; then
		for unit in $UNITS; do
			remove_file "$UNIT_DIR/$unit"
		done
		remove_file "$BINARY_PATH"
		remove_file "$MAN_PATH"
	fi
	remove_file "$DROPIN_FILE"
	rmdir "$DROPIN_DIR" 2>/dev/null || true
	remove_file "$TMPFILES_FILE"
	if systemd_running; then
		systemctl daemon-reload
	fi

	remove_file "$token_dir/$TOKEN_FILE_NAME"
	if [ -d "$token_dir" ]; then
		if rmdir "$token_dir" 2>/dev/null; then
			say "removed $token_dir"
		else
			warn "kept $token_dir: it holds files that install.sh did not create"
		fi
	fi

	if [ "$purge" = no ]; then
		if [ -e "$STATE_DIR/nonce" ]; then
			say "kept $STATE_DIR/nonce: a reinstall logs in with it; --purge deletes it"
		fi
		say "kept $CONFIG_DIR, $STATE_DIR and user $SERVICE_USER; --purge removes them"
		say "done"
		return
	fi

	if [ -e "$STATE_DIR/nonce" ]; then
		warn "deleting $STATE_DIR/nonce: this instance cannot log in with the ec2 method again until its entry is removed from Vault's identity access list"
	fi
	if [ -d "$STATE_DIR" ]; then
		rm -rf "$STATE_DIR"
		say "removed $STATE_DIR"
	fi
	if [ -d "$CONFIG_DIR" ]; then
		rm -rf "$CONFIG_DIR"
		say "removed $CONFIG_DIR"
	fi
	if user_exists "$SERVICE_USER"; then
		delete_user
		say "removed user $SERVICE_USER"
	fi
	if group_exists "$SERVICE_GROUP"; then
		delete_group "$SERVICE_GROUP"
		say "removed group $SERVICE_GROUP"
	fi
	if [ "$token_group" != "$SERVICE_GROUP" ]; then
		say "kept group $token_group, which applications may use"
	fi
	say "done"
}

if [ "$action" = install ]; then
	do_install
else
	do_uninstall
fi
