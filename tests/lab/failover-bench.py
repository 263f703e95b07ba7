#!/usr/bin/env python3
"""Client-visible VRRP failover of vigil and keepalived, measured the same way in one run.

usage: failover-bench.py [--reps N] [--adverts 1,0.1] [--impls vigil,keepalived]
                         [--events crash,sigterm,handover] [--bin-dir DIR] OUTDIR [PREFIX]
e.g.   failover-bench.py --reps 10 /tmp/fb        (root; keepalived, python3; vigild and
       vigilctl from --bin-dir, default $CARGO_TARGET_DIR or target/, release then debug)

A netns lab PREFIX (default fb): lb1 (priority 150) and lb2 (100), both preempting,
VRRPv3, VIP .100, a TCP responder on VIP:8080 in both, and a client that connects to it
every 10 ms (tools/probe.py, 50 ms timeout) and pings it (ping -D -i 0.01). For every
implementation and advert interval, REPS times each:
  crash     SIGKILL of the daemon (keepalived: VRRP child, then parent) + lb1's cable
            pulled; lb1 then "reboots": stale VIP deleted, cable back, daemon restarted,
            and lb1 preempts again;
  sigterm   graceful stop of lb1's daemon, then restart (lb1 preempts again);
  handover  vigil only: `vigilctl vrrp handover`, then `vigilctl vrrp reclaim`.
Per event: client_ok = seconds from the event until the first TCP probe answered by lb2;
blackout = time between the last answered probe before it and that one, when probes
failed in between (else 0); failed = failed probes; ping_gap = the longest gap between
ping replies after the event, next to the longest in the 0.3 s before it (ping -i 0.01
is no exact clock: steady-state gaps reach ~20 ms here). Printed as
median [min..max] per implementation, advert and event. Figures only: nothing asserts.
OUTDIR keeps configs, daemon logs and a pcap of the wire.
"""
import argparse, os, random, re, signal, statistics, subprocess as sp, sys, threading, time

ap = argparse.ArgumentParser(usage=__doc__)
ap.add_argument("--reps", type=int, default=10)
ap.add_argument("--adverts", default="1,0.1")
ap.add_argument("--impls", default="vigil,keepalived")
ap.add_argument("--events", default="crash,sigterm,handover")
ap.add_argument("--bin-dir")
ap.add_argument("outdir")
ap.add_argument("prefix", nargs="?", default="fb")
A = ap.parse_args()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NL = os.path.join(HERE, "netns-lab")
OUT, LAB = A.outdir, A.prefix
os.makedirs(OUT, exist_ok=True)


def bin_dir():
    if A.bin_dir:
        return A.bin_dir
    base = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    for prof in ("release", "debug"):
        if os.path.exists(os.path.join(base, prof, "vigild")):
            return os.path.join(base, prof)
    sys.exit(f"no vigild under {base}: build with `cargo build --bins` or give --bin-dir")


BIN = bin_dir()
sp.run([NL, "up", "--prefix", LAB, "--hosts", "lb1,lb2,client"], check=True, stdout=sp.DEVNULL)
SUB = sp.check_output([NL, "ip", LAB, "lb1"], text=True).strip().rsplit(".", 1)[0]
VIP, PORT = SUB + ".100", 8080
procs = []


def ns(h): return f"{LAB}-{h}"
def run(*a): return sp.run(a, capture_output=True, text=True)
def spawn(host, *cmd, **kw):
    p = sp.Popen(["ip", "netns", "exec", ns(host), *cmd], **kw); procs.append(p); return p


class Lines:  # timestamps every stdout line of a process as it arrives
    def __init__(self, p, parse=lambda t, l: (t, l)):
        self.p, self.ev = p, []
        threading.Thread(target=self._rd, args=(parse,), daemon=True).start()
    def _rd(self, parse):
        for line in self.p.stdout:
            self.ev.append(parse(time.time(), line.strip()))


class Keepalived:
    def __init__(self, host, prio, adv):
        self.host = host
        self.cfg = f"{OUT}/ka-{host}-{adv:g}.conf"
        with open(self.cfg, "w") as f:
            f.write(f"global_defs {{\n  router_id {host}\n  vrrp_version 3\n}}\n"
                    f"vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n"
                    f"  priority {prio}\n  advert_int {adv:g}\n  virtual_ipaddress {{\n    {VIP}/24 dev eth0\n  }}\n}}\n")
        self.log = open(f"{OUT}/ka-{host}.log", "a")
    def start(self):
        self.vpid = f"{OUT}/ka-{self.host}-vrrp.pid"
        if os.path.exists(self.vpid): os.unlink(self.vpid)
        self.p = spawn(self.host, "keepalived", "--vrrp", "-n", "-l", "-D", "-f", self.cfg,
                       "--pid", f"{OUT}/ka-{self.host}.pid", "--vrrp_pid", self.vpid,
                       stdout=self.log, stderr=sp.STDOUT)
        while not os.path.exists(self.vpid): time.sleep(0.005)
        time.sleep(0.01)
        self.child = int(open(self.vpid).read())
    def crash(self):
        os.kill(self.child, signal.SIGKILL); os.kill(self.p.pid, signal.SIGKILL); self.p.wait()
    def stop(self):
        self.p.send_signal(signal.SIGTERM); self.p.wait()


class Vigil:
    def __init__(self, host, prio, adv):
        self.host, self.sock = host, f"{OUT}/vigil-{host}.sock"
        self.cfg = f"{OUT}/vigil-{host}-{adv:g}.toml"
        with open(self.cfg, "w") as f:
            f.write(f'[director]\nname = "{host}"\nstatus_socket = "{self.sock}"\n'
                    f'state_file = "{OUT}/vigil-{host}-state.json"\n\n'
                    f'[vrrp.web]\ninterface = "eth0"\nvrid = 51\npriority = {prio}\n'
                    f'advert_interval = "{int(adv * 1000)}ms"\nvips = ["{VIP}/24"]\n')
        self.log = open(f"{OUT}/vigil-{host}.log", "a")
    def start(self):
        self.p = spawn(self.host, f"{BIN}/vigild", "--config", self.cfg, stdout=self.log, stderr=sp.STDOUT)
        while not os.path.exists(self.sock) and self.p.poll() is None: time.sleep(0.005)
    def crash(self):
        self.p.kill(); self.p.wait()
    def stop(self):
        self.p.send_signal(signal.SIGTERM); self.p.wait()
    def ctl(self, *args):
        return run(f"{BIN}/vigilctl", "--socket", self.sock, *args)


def vip_event(mon, after, deleted=False):
    for t, l in list(mon.ev):
        if t >= after and f"inet {VIP}/" in l and l.startswith("Deleted") == deleted:
            return t
    return None


def wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        r = pred()
        if r: return r
        time.sleep(0.005)
    raise TimeoutError("condition not reached")


def stable_on(probe, who, since, n=20):
    ev = [e for e in list(probe.ev) if e[0] >= since]
    return len(ev) >= n and all(e[1] == who for e in ev[-n:])


def client_view(probe, t0, new):
    """first probe answered by `new` after t0 -> (recovered after, failed probes, blackout)"""
    ev = [e for e in list(probe.ev) if e[0] >= t0 - 1]
    rec = next(e[0] for e in ev if e[0] >= t0 and e[1] == new)
    failed = [e for e in ev if t0 <= e[0] < rec and e[1] == "-"]
    last_ok = max([e[0] for e in ev if e[0] < rec and e[1] != "-"], default=t0)
    return rec - t0, len(failed), (rec - last_ok) if failed else 0.0


def ping_start():
    return spawn("client", "ping", "-n", "-D", "-i", "0.01", "-W", "0.2", VIP, stdout=sp.PIPE, text=True)


def ping_stop(p, t0):
    """-> (longest reply gap ending after t0, longest before t0: the steady-state floor)"""
    p.send_signal(signal.SIGINT); out = p.communicate()[0]
    r = [(float(m[1]), int(m[2])) for m in re.finditer(r"^\[([\d.]+)\] \d+ bytes from .* icmp_seq=(\d+)", out, re.M)]
    gaps = [(b[0], b[0] - a[0]) for a, b in zip(r, r[1:])]
    return (max((g for t, g in gaps if t >= t0), default=0),
            max((g for t, g in gaps if t < t0), default=0))


def bench(impl, adv, probe, mon, results):
    cls = Vigil if impl == "vigil" else Keepalived
    d1, d2 = cls("lb1", 150, adv), cls("lb2", 100, adv)
    t = time.time(); d2.start(); d1.start()
    wait_for(lambda: vip_event(mon["lb1"], t)); wait_for(lambda: stable_on(probe, "lb1", t))
    scen = [e for e in A.events.split(",") if e != "handover" or impl == "vigil"]
    for i in range(A.reps):
        for s in scen:
            time.sleep(0.5 + random.random() * adv)  # random phase against the adverts
            pg = ping_start(); time.sleep(0.3)
            t0 = time.time()
            if s == "crash":
                d1.crash(); run("ip", "-n", ns("br"), "link", "set", "v-lb1", "down")
            elif s == "sigterm":
                d1.stop()
            else:
                d1.ctl("vrrp", "handover", "web")
            wait_for(lambda: any(e[0] >= t0 and e[1] == "lb2" for e in list(probe.ev)))
            rec, failed, gap = client_view(probe, t0, "lb2")
            at = [f"{e[0] - t0:+.3f}" for e in list(probe.ev) if t0 <= e[0] < t0 + rec and e[1] == "-"]
            time.sleep(0.4); pgap, pbase = ping_stop(pg, t0)
            results.setdefault((impl, adv, s), []).append((rec, gap, failed, pgap, pbase))
            print(f"{impl:10s} adv {adv:g}s [{i}] {s:8s} client ok via lb2 after {rec:.3f}s, "
                  f"{failed} failed probes (blackout {gap:.3f}s), ping gap {pgap:.3f}s "
                  f"(before the event {pbase:.3f}s)" + (f"; probes failed at {' '.join(at[:8])}" if at else ""),
                  flush=True)
            # back to lb1 as master
            t1 = time.time()
            if s == "handover":
                d1.ctl("vrrp", "reclaim", "web")
            else:
                run("ip", "-n", ns("lb1"), "addr", "del", f"{VIP}/24", "dev", "eth0")
                run("ip", "-n", ns("br"), "link", "set", "v-lb1", "up")
                d1.start()
            wait_for(lambda: any(e[0] >= t1 and e[1] == "lb1" for e in list(probe.ev)), 30)
            wait_for(lambda: stable_on(probe, "lb1", t1), 30)
    d1.stop(); d2.stop()
    for h in ("lb1", "lb2"):
        run("ip", "-n", ns(h), "addr", "del", f"{VIP}/24", "dev", "eth0")
    time.sleep(0.5)


def main():
    for h in ("lb1", "lb2"):
        spawn(h, "python3", f"{HERE}/tools/responder.py", h, str(PORT))
    spawn("br", "tcpdump", "-i", "br0", "-n", "-U", "-w", f"{OUT}/vrrp.pcap", "vrrp or arp",
          stdout=sp.DEVNULL, stderr=sp.DEVNULL)
    mon = {h: Lines(spawn(h, "ip", "-o", "monitor", "address", stdout=sp.PIPE, text=True)) for h in ("lb1", "lb2")}
    probe = Lines(spawn("client", "python3", f"{HERE}/tools/probe.py", VIP, str(PORT), "0.01", "0.05",
                        stdout=sp.PIPE, text=True),
                  parse=lambda t, l: (float(l.split()[0]), l.split()[2]))
    time.sleep(0.5)
    results = {}
    for adv in [float(a) for a in A.adverts.split(",")]:
        for impl in A.impls.split(","):
            bench(impl, adv, probe, mon, results)
    print(f"\nSUMMARY VRRPv3, lb1 prio 150 -> lb2 prio 100, {A.reps} reps "
          f"(seconds; median [min..max]; vigild from {BIN})")
    def f(c, fmt="{:.3f}"):
        return f"{fmt.format(statistics.median(c))} [{fmt.format(min(c))}..{fmt.format(max(c))}]"
    for (impl, adv, s), rows in results.items():
        c = list(zip(*rows))
        print(f"  {impl:10s} adv {adv:<4g} {s:8s} n={len(rows)} client_ok={f(c[0])} blackout={f(c[1])} "
              f"failed_probes={f(c[2], '{:g}')} ping_gap={f(c[3])} ping_gap_before={f(c[4])}")


try:
    main()
finally:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try: p.wait(2)
            except sp.TimeoutExpired: p.kill(); p.wait()
    sp.run([NL, "down", "--prefix", LAB], stdout=sp.DEVNULL)
