#!/usr/bin/env bash
# demo.sh: build vigil, validate the example clusters, run a director on one of them and
# look at it through vigilctl: status, services, VRRP, a good and a bad reload, a clean
# stop. Leaves nothing behind. `--keep` leaves vigild running in the foreground at the end
# (Ctrl-C stops it).
#
# This is the foundation's demo. The full demo (two directors, real servers and a client
# in network namespaces, IPVS in the kernel lab) replaces it as the daemon learns to
# drive checks, IPVS and VRRP.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
KEEP=${1:-}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Building vigild and vigilctl"
cargo build --quiet --bins
BIN=$PWD/target/debug
export PATH=$BIN:$PATH

W=$(mktemp -d /tmp/vigil-demo.XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

step "Validating the example clusters"
show vigild check-config conf/*.toml

step "A broken file: every error, with file, line, column and a hint"
sed -e 's/^vrid = 51/vrid = 510/' -e 's/^scheduler = "wrr"/scheduler = "wrrr"/' \
  -e 's/^priority = 150 .*/priorty = 150/' conf/web-dr.toml > "$W/broken.toml"
show vigild check-config "$W/broken.toml" || echo "(exit status $?)"

step "Starting vigild on conf/web-dr.toml (status socket moved to $W; network isolated)"
sed -e "s|^status_socket = .*|status_socket = \"$W/vigil.sock\"|" -e '/^status_socket_group/d' \
  conf/web-dr.toml > "$W/cluster.toml"
# In a network namespace of its own (only lo): the example's real servers and VRRP
# peers are not on this machine, and the demo must not send packets anywhere else.
unshare --net -- sh -c 'ip link set lo up && exec "$0" "$@"' \
  "$BIN/vigild" --config "$W/cluster.toml" 2> "$W/vigild.log" &
PID=$!
for _ in $(seq 100); do [ -S "$W/vigil.sock" ] && break; sleep 0.1; done
[ -S "$W/vigil.sock" ] || { cat "$W/vigild.log"; exit 1; }
export VIGIL_SOCKET=$W/vigil.sock
show vigilctl status
step "Services: checks run, but these real servers are not reachable from the demo's namespace"
show vigilctl services
step "VRRP instances"
show vigilctl vrrp

step "Reload: give 192.0.2.13 more weight, then vigilctl reload"
sed -i 's/{ address = "192.0.2.13", weight = 200 }/{ address = "192.0.2.13", weight = 300 }/' "$W/cluster.toml"
show vigilctl reload
show vigilctl services

step "A bad edit, then SIGHUP: rejected, the running config stays"
echo 'unknown_setting = true' >> "$W/cluster.toml"
show kill -HUP "$PID"
sleep 0.3
show vigilctl status
step "The daemon's log"
cat "$W/vigild.log"

if [ "$KEEP" = --keep ]; then
  sed -i '$d' "$W/cluster.toml"
  step "vigild keeps running (pid $PID); in another shell: VIGIL_SOCKET=$W/vigil.sock $BIN/vigilctl status"
  tail -f "$W/vigild.log" --pid "$PID" &
  wait "$PID" || true
  PID=""
  exit 0
fi
step "Stopping (SIGTERM)"
kill -TERM "$PID"; wait "$PID" && echo "vigild exited cleanly"; PID=""
show vigilctl status || echo "(exit status $?: not running)"
