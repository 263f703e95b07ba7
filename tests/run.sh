#!/usr/bin/env bash
# tests/run.sh: the whole test suite, as CI runs it.  Usage: bash tests/run.sh
#
# 1. installs what the tests need (Debian packages, the IPVS kernel lab) when root;
# 2. cargo fmt --check, clippy -D warnings, build of all binaries;
# 3. every test but the kernel-lab binaries with cargo-nextest, plus the doctests;
# 4. every kernel_* test binary of the workspace with `cargo test`, so each boots the
#    kernel lab VM once (nextest would boot one per test; see tests/lab/README.md).
#
# Quiet: one line per step; a failed step's output is shown (all of it when CI=true,
# else its end) and every step's log is kept in $LOGS.  With CI=true a missing lab
# prerequisite fails the tests (VIGIL_REQUIRE_LABS=1) instead of skipping them.
# Env: CARGO_TARGET_DIR is honoured; VIGIL_TEST_LOGS sets the log folder.
set -uo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT" || exit 1
LAB=$ROOT/tests/lab
CI=${CI:-false}
LOGS=${VIGIL_TEST_LOGS:-$(mktemp -d /tmp/vigil-tests.XXXXXX)}
mkdir -p "$LOGS"
if [ "$CI" = true ]; then export VIGIL_REQUIRE_LABS=1; fi
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Tests that can't run here note "SKIPPED: <test>: <reason>" in this file (vigil-testlab);
# test runners hide the output of passing tests, and the summary lists them all.
export VIGIL_SKIP_LOG=$LOGS/skipped.txt
: >"$VIGIL_SKIP_LOG"

# Labs built during this run carry this tag (netns-lab reads $NETNS_LAB_TAG), so the
# exit trap removes exactly those, also when a test process died without unwinding,
# and never a lab of someone else working on this machine.
export NETNS_LAB_TAG=run$$-$(date +%s)
is_root() { [ "$(id -u)" = 0 ]; }
cleanup() {
  if is_root && [ -x "$LAB/netns-lab" ]; then
    "$LAB/netns-lab" down-all --tag "$NETNS_LAB_TAG" >"$LOGS/cleanup.log" 2>&1 ||
      echo "warning: removing this run's netns labs failed, see $LOGS/cleanup.log" >&2
    if grep -q '^lab ' "$LOGS/cleanup.log"; then
      echo "cleanup: removed netns labs left behind by tests: $(grep -c '^lab ' "$LOGS/cleanup.log")"
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS=()     # "status|seconds|name"
FAILED=0
# step NAME CMD...: runs CMD with output into $LOGS/NAME.log and reports in one line.
step() {
  local name=$1; shift
  local log=$LOGS/$name.log start=$SECONDS rc
  printf '%-34s ' "$name" >&2
  "$@" >"$log" 2>&1; rc=$?
  local took=$((SECONDS - start))
  if [ $rc = 0 ]; then
    echo "ok (${took} s)" >&2
    RESULTS+=("ok|$took|$name")
  else
    echo "FAILED (exit $rc, ${took} s; log: $log)" >&2
    RESULTS+=("FAILED|$took|$name")
    FAILED=1
    if [ "$CI" = true ]; then
      sed 's/^/    /' "$log" >&2
    else
      tail -n 60 "$log" | sed 's/^/    /' >&2
    fi
  fi
  return $rc
}
skip_step() {
  printf '%-34s skipped (%s)\n' "$1" "$2" >&2
  RESULTS+=("skipped|0|$1")
}

# ---- 1. prerequisites -------------------------------------------------------------
# The test suite's own needs; the kernel lab's packages come along so that one apt
# run covers everything (install-kernel-lab then finds them in place).
PKGS=(iproute2 procps util-linux curl iputils-ping keepalived nftables conntrack
      qemu-system-x86 kmod busybox-static ipvsadm cpio xz-utils
      # the Debian package test (tests/deb.rs): deploy/build-deb strips and reads the
      # binaries (binutils); installing it runs systemd-sysusers, and the test runs
      # systemd-analyze verify and man on what it installed
      binutils systemd man-db
      dnsmasq-base                  # a real DNS server for the DNS check tests
      tcpdump                       # the VMAC tests read adverts' source MACs off the bridge
      python3                       # the BGP labs' echo servers and clients
      bird2 frr)                    # BGP speakers of the announce tests (kernel_bgp)
install_packages() {
  local missing=() p
  # Installed, not only known: a removed package keeps its config files, and `dpkg -s`
  # still succeeds for it.
  for p in "${PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
      missing+=("$p")
  done
  if [ ${#missing[@]} = 0 ]; then echo "all packages present"; return 0; fi
  echo "installing: ${missing[*]}"
  local apt=(apt-get -o DPkg::Lock::Timeout=300)
  "${apt[@]}" update -qq || return 1
  export LAB_APT_UPDATED=1          # install-kernel-lab needn't update again
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" ||
    return 1
  # Tests start their own keepalived inside namespaces; the packaged service is not
  # wanted on a test machine.
  if [[ " ${missing[*]} " == *" keepalived "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now keepalived.service || true
  fi
  # Likewise the speakers: kernel_bgp runs its own BIRD and FRR daemons in namespaces.
  if [[ " ${missing[*]} " == *" bird2 "* || " ${missing[*]} " == *" frr "* ]] &&
     [ -d /run/systemd/system ]; then
    systemctl disable --now bird.service frr.service || true
  fi
}

if is_root && command -v apt-get >/dev/null; then
  step packages install_packages
  step kernel-lab bash "$LAB/install-kernel-lab"
  # Labs of test runs that died without cleaning up (their owner process is gone).
  step netns-lab-gc "$LAB/netns-lab" gc
elif [ "$CI" = true ]; then
  step packages sh -c 'echo "CI needs root (and apt-get) to install the labs" >&2; exit 1'
else
  skip_step packages "not root or no apt-get: lab tests will say SKIPPED"
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found in PATH" >&2
  exit 1
fi

# ---- 2. static checks and build ---------------------------------------------------
step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
BUILD_OK=true
step build cargo build --workspace --bins || BUILD_OK=false

# ---- 3. host tests ----------------------------------------------------------------
if ! $BUILD_OK; then
  skip_step tests "build failed"
elif cargo nextest --version >/dev/null 2>&1; then
  profile=default
  if [ "$CI" = true ]; then profile=ci; fi
  # Failures are repeated at the end, so the tail of the log shows them.
  step tests cargo nextest run --workspace --profile "$profile" --no-fail-fast \
    --failure-output immediate-final --no-tests warn
  step doctests cargo test --workspace --doc
else
  # Without nextest, cargo test runs the kernel_* binaries as well (once each, which
  # is right), so the separate loop below is not needed.
  step tests cargo test --workspace --no-fail-fast
  KERNEL_DONE=true
fi

# The README's first command must keep working as written.
if $BUILD_OK; then
  step demo bash deploy/demo.sh
fi

# ---- 4. kernel-lab test binaries, one VM each -------------------------------------
# Every test target named kernel_* in the workspace, as "package target" lines.
kernel_targets() {
  cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
for pkg in meta["packages"]:
    if pkg["id"] not in members:
        continue
    for t in pkg["targets"]:
        if "test" in t["kind"] and t["name"].startswith("kernel_"):
            print(pkg["name"], t["name"])'
}
discover_kernel_targets() {
  kernel_targets >"$LOGS/kernel-targets.txt" && cat "$LOGS/kernel-targets.txt"
}
if ! $BUILD_OK; then
  skip_step kernel-tests "build failed"
elif [ "${KERNEL_DONE:-false}" != true ]; then
  if step kernel-discovery discover_kernel_targets; then
    targets=$(cat "$LOGS/kernel-targets.txt")
    if [ -z "$targets" ]; then
      skip_step kernel-tests "no kernel_* test targets"
    fi
    while read -r pkg target; do
      [ -n "$pkg" ] || continue
      step "kernel:$pkg:$target" cargo test -p "$pkg" --test "$target"
    done <<<"$targets"
  fi
fi

# ---- summary -----------------------------------------------------------------------
echo >&2
echo "summary (logs in $LOGS):" >&2
for r in "${RESULTS[@]}"; do
  IFS='|' read -r status secs name <<<"$r"
  printf '  %-8s %5s s  %s\n' "$status" "$secs" "$name" >&2
done
# Tests that could not run here print "SKIPPED: <test>: <reason>"; make them visible.
skipped=$(cat "$VIGIL_SKIP_LOG" "$LOGS"/*.log 2>/dev/null | grep -o 'SKIPPED: .*' | sort -u)
if [ -n "$skipped" ]; then
  echo "skipped tests ($(wc -l <<<"$skipped")):" >&2
  sed 's/^/  /' <<<"$skipped" >&2
fi
# One closing line for whoever reads only the end (CI): tests counted over every runner.
# nextest: "Summary [...] N tests run: P passed, F failed, ..."; cargo test (doctests and
# kernel-lab binaries): "test result: ok. P passed; F failed; ...".
# The nextest log also holds each test's own libtest output: count only its Summary.
counts=$(python3 - "$LOGS" <<'PY'
import glob, os, re, sys
p = f = 0
for path in glob.glob(os.path.join(sys.argv[1], "*.log")):
    nextest = os.path.basename(path) == "tests.log"
    for line in open(path, errors="replace"):
        m = re.search(r"Summary \[.*\] +\d+ tests? run: (\d+) passed(?:.*?(\d+) failed)?", line)
        if nextest and m:
            p += int(m.group(1)); f += int(m.group(2) or 0)
        m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
        if not nextest and m:
            p += int(m.group(1)); f += int(m.group(2))
print(p, f)
PY
)
read -r npassed nfailed <<<"${counts:-0 0}"
echo "tests: $npassed passed, $nfailed failed"
if [ $FAILED = 0 ]; then
  echo "ALL PASSED" >&2
else
  echo "SOME STEPS FAILED" >&2
fi
exit $FAILED
