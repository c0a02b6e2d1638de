#!/bin/sh
# Run a command in a new network namespace whose only interface is loopback,
# so nothing it starts can reach another host. Needs root (or CAP_SYS_ADMIN).
#
# Usage: scripts/in-netns.sh CMD [ARG...]
set -eu

if [ "$#" -eq 0 ]; then
  echo "usage: $0 CMD [ARG...]" >&2
  exit 64
fi

exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh "$@"
