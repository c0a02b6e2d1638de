#!/bin/sh
# Run a command in a new network namespace whose only interface is loopback,
# so nothing it starts can reach another host, and in a private mount
# namespace, so filesystems the tests mount (a small tmpfs, a read-only bind
# mount) never appear on the host. Needs root (or CAP_SYS_ADMIN).
#
# Usage: scripts/in-netns.sh CMD [ARG...]
set -eu

if [ "$#" -eq 0 ]; then
  echo "usage: $0 CMD [ARG...]" >&2
  exit 64
fi

# Tests compare their mount namespace with this one before they mount anything.
STORK_OUTER_MOUNT_NS="$(readlink /proc/self/ns/mnt)"
export STORK_OUTER_MOUNT_NS
exec unshare --net --mount --propagation private sh -c 'ip link set lo up && exec "$@"' sh "$@"
