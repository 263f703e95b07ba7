#!/usr/bin/env bash
# demo.sh: a vigil director pair in front of three HTTP real servers, with a client, all
# in network namespaces, IPVS in direct-routing mode. It shows, step by step, what an
# operator sees: `vigilctl services` and `vigilctl vrrp` on both directors, traffic
# spreading over the real servers, a real server failing and leaving, the master killed
# and the standby taking over with the client still served, and the master returning.
#
# IPVS needs a kernel that has it. On one without (no ip_vs) the demo runs natively with
# vigil's nftables datapath (`datapath = "nftables"`, NAT with the real servers routing
# replies via the VIP) when `nft` is installed; `--kernel-lab` runs it with IPVS inside
# the project's kernel lab instead (a QEMU VM with Debian's stock kernel over this
# machine's filesystem, tests/lab/), installing the lab first if needed; `--nftables`
# uses nftables even where IPVS exists. Every packet stays inside the namespaces the
# demo creates; everything is removed at the end. Needs root. Takes about half a minute
# natively, a minute in the VM.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
LAB=$ROOT/tests/lab

if [ "${1:-}" != --inside ]; then
  MODE=${1:-auto}
  case $MODE in
    auto|--kernel-lab|--nftables) ;;
    *) echo "usage: demo.sh [--kernel-lab | --nftables]" >&2; exit 2;;
  esac
  [ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (namespaces, IPVS, VRRP)" >&2; exit 1; }
  echo "== Building vigild and vigilctl"
  (cd "$ROOT" && cargo build --quiet --bins)
  if [ "$MODE" = --nftables ]; then
    DEMO_DATAPATH=nftables exec bash "$0" --inside
  fi
  if [ "$MODE" = auto ] && { [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null; }; then
    DEMO_DATAPATH=ipvs exec bash "$0" --inside
  fi
  if [ "$MODE" = auto ] && command -v nft >/dev/null; then
    echo "== This kernel has no IPVS: the demo runs with the nftables datapath (--kernel-lab: IPVS in a QEMU VM)"
    DEMO_DATAPATH=nftables exec bash "$0" --inside
  fi
  echo "== Running the demo with IPVS inside the kernel lab (a QEMU VM)"
  bash "$LAB/install-kernel-lab"
  DEMO_DATAPATH=ipvs exec bash "$LAB/in-ipvs-kernel" --timeout 600 -- bash "$0" --inside
fi
DATAPATH=${DEMO_DATAPATH:-ipvs}

# ---- the demo proper (root, a kernel with IPVS) ------------------------------------
# Where `cargo build` above put them (the environment, CARGO_TARGET_DIR included, is
# carried into the kernel lab).
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET;; esac
BIN=$TARGET/debug
export PATH=$BIN:$PATH
P=demo$$
P=${P:0:10}
W=$(mktemp -d /tmp/vigil-demo.XXXXXX)
cleanup() {
  "$LAB/netns-lab" down --prefix "$P" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

START=$(date +%s.%N)
step() { printf '\n\033[1m== %s\033[0m \033[2m(+%s s)\033[0m\n' "$*" "$(awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')"; }
on() { local host=$1; shift; "$LAB/netns-lab" exec "$P" "$host" -- "$@"; }
ctl() { local lb=$1; shift; printf '\033[2m[%s]$ vigilctl %s\033[0m\n' "$lb" "$*"; vigilctl --socket "$W/$lb.sock" "$@"; }
# wait_for SECONDS CMD...: until CMD succeeds.
wait_for() {
  local t=$1; shift
  for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for: $*" >&2; return 1
}

step "Lab: two directors (lb1, lb2), three real servers (rs1..rs3) and a client on one bridge"
"$LAB/netns-lab" up --prefix "$P" --hosts lb1,lb2,rs1,rs2,rs3,client --owner $$ >/dev/null
"$LAB/netns-lab" list "$P"
VIP=10.99.0.100
echo "virtual IP: $VIP (floats between lb1 and lb2 by VRRP)"

if [ "$DATAPATH" = ipvs ]; then
# Direct routing: the real servers hold the VIP on lo but never answer ARP for it, and
# reply to clients directly; the directors only carry the inbound half.
for rs in rs1 rs2 rs3; do
  mkdir -p "$W/$rs"; echo "$rs" > "$W/$rs/id"
  on "$rs" sh -ec "ip addr add $VIP/32 dev lo
    sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2"
done
FORWARDING=dr
SYNC="[ipvs_sync]
interface = \"eth0\"
instance = \"web\""
else
# NAT (nftables has no direct routing): the directors DNAT to the real servers, which
# route their replies to the client via the VIP, so whichever director holds it undoes
# the translation.
CLIENT=$("$LAB/netns-lab" ip "$P" client)
for rs in rs1 rs2 rs3; do
  mkdir -p "$W/$rs"; echo "$rs" > "$W/$rs/id"
  on "$rs" ip route replace "$CLIENT" via "$VIP"
done
for lb in lb1 lb2; do
  on "$lb" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
    net.ipv4.conf.eth0.send_redirects=0
done
FORWARDING=nat
SYNC=""
fi
# busybox httpd in the foreground of each real server's namespace; PIDs kept to stop one.
declare -A HTTPD
# (netns-lab execs into the program, so $! is httpd's own PID.)
serve() { "$LAB/netns-lab" exec "$P" "$1" -- busybox httpd -f -p 80 -h "$W/$1" & HTTPD[$1]=$!; }
for rs in rs1 rs2 rs3; do serve "$rs"; done

director() {  # director NAME PRIORITY
  cat > "$W/$1.toml" <<EOF
[director]
name = "$1"
status_socket = "$W/$1.sock"
state_file = "$W/$1.state.json"
datapath = "$DATAPATH"

[vrrp.web]
interface = "eth0"
vrid = 51
priority = $2
advert_interval = "100ms"
vips = ["$VIP/24"]

$SYNC

[[virtual_server]]
name = "web"
address = "$VIP:80"
scheduler = "rr"
forwarding = "$FORWARDING"
check = { kind = "http", path = "/id", interval = "500ms", timeout = "300ms", rise = 2, fall = 2 }
real_server = [
  { address = "$("$LAB/netns-lab" ip "$P" rs1)" },
  { address = "$("$LAB/netns-lab" ip "$P" rs2)" },
  { address = "$("$LAB/netns-lab" ip "$P" rs3)" },
]
EOF
  vigild check-config "$W/$1.toml" >/dev/null
  on "$1" vigild --config "$W/$1.toml" 2>"$W/$1.log" &
}
# Real servers up (each also lists its checks, which have a health of their own).
healthy() {
  vigilctl --socket "$W/$1.sock" services --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(r["health"] == "up" for v in d["virtual_servers"] for r in v["real_servers"]))' |
    grep -qx "$2"
}
state_is() { vigilctl --socket "$W/$1.sock" vrrp --json | grep -q "\"state\": \"$2\""; }
# The client's view: who answers N requests to the VIP.
requests() {
  on client sh -c "for i in \$(seq $1); do curl -s -m 2 http://$VIP/id || echo FAILED; done" |
    sort | uniq -c | awk '{printf "%s: %s  ", $2, $1} END {print ""}'
}

step "Starting vigild on lb1 (priority 150) and lb2 (priority 100)"
director lb1 150
director lb2 100
wait_for 30 test -S "$W/lb1.sock"
wait_for 30 test -S "$W/lb2.sock"
wait_for 30 state_is lb1 master
wait_for 30 healthy lb1 3
wait_for 30 healthy lb2 3
ctl lb1 vrrp
ctl lb2 vrrp
ctl lb1 services
ctl lb1 status | grep datapath
echo
if [ "$DATAPATH" = ipvs ]; then
  echo "lb1's kernel (ipvsadm -Ln, the independent witness):"
  on lb1 ipvsadm -Ln
else
  echo "lb1's kernel (nft list table inet vigil, the independent witness):"
  on lb1 nft list table inet vigil
fi

if [ "$DATAPATH" = ipvs ]; then
  step "The client sends 12 requests to $VIP: round robin over the real servers"
else
  step "The client sends 12 requests to $VIP: spread over the real servers (rr in nftables: random, equal shares)"
fi
requests 12

step "rs2's web server dies: its check fails twice and lb1 takes it out of $DATAPATH"
kill "${HTTPD[rs2]}"
wait_for 30 healthy lb1 2
ctl lb1 services
requests 12

step "rs2 comes back: two passing checks and it is in again"
serve rs2
wait_for 30 healthy lb1 3
ctl lb1 services

step "lb1 crashes (vigild killed, cable cut): lb2 takes over the VIP"
on client sh -c "while :; do curl -s -o /dev/null -m 1 http://$VIP/id && echo ok || echo fail; sleep 0.05; done" > "$W/probe.log" &
PROBE=$!
sleep 1
t0=$(date +%s.%N)
pkill -9 -f "vigild --config $W/lb1.toml"
"$LAB/netns-lab" exec "$P" br -- ip link set v-lb1 down
wait_for 30 state_is lb2 master
# lb2's own record of when it took over, against the moment of the crash.
t1=$(vigilctl --socket "$W/lb2.sock" vrrp --json | grep -o '"at_unix": [0-9.]*' | head -n 1 | awk '{print $2}')
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "lb2 took over %.2f s after the crash (advert 100 ms: Master_Down_Interval = 3 x 0.1 s + skew 0.06 s)\n", b - a }'
sleep 1
kill $PROBE 2>/dev/null; wait $PROBE 2>/dev/null || true
echo "client probes every 50 ms during the failover: $(grep -c ok "$W/probe.log") ok, $(grep -c fail "$W/probe.log") failed"
ctl lb2 vrrp
requests 9

step "lb1 returns: it starts as backup, hears lb2, and preempts with its higher priority"
# lb1's crashed vigild left the VIP on its interface; the new one keeps it only until it
# hears the current master.
"$LAB/netns-lab" exec "$P" br -- ip link set v-lb1 up
on lb1 vigild --config "$W/lb1.toml" 2>>"$W/lb1.log" &
wait_for 30 test -S "$W/lb1.sock"
wait_for 30 state_is lb1 master
wait_for 30 state_is lb2 backup
ctl lb1 vrrp
ctl lb2 vrrp
requests 9

step "Done: stopping the directors and removing the lab"
