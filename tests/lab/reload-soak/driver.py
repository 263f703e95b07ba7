"""The director soak without cargo: a release vigild at 1,000 x 10 real servers (run
listen.py first), CPU per 1,000 checks, then RELOADS SIGHUP reloads (each changing one
weight; VmHWM reset before each) and SERVICES (0/1) a `services` call after each.
usage: driver.py VIGILD LABEL [INTERVAL=30s] [RELOADS=10] [SERVICES=1] [CPU_SECONDS=20]
Prints one JSON line. See docs/benchmarks.md ("Memory over reloads")."""
import json, os, socket, subprocess, sys, time, signal, statistics
bin_, label = sys.argv[1], sys.argv[2]
interval = sys.argv[3] if len(sys.argv) > 3 else "30s"
reloads = int(sys.argv[4]) if len(sys.argv) > 4 else 10
services = int(sys.argv[5]) if len(sys.argv) > 5 else 1
cpu_s = float(sys.argv[6]) if len(sys.argv) > 6 else 20
HERE = os.path.dirname(os.path.abspath(__file__))
D = f"/tmp/reload-soak-{label}"; subprocess.run(["rm", "-rf", D]); os.makedirs(D)
gen = lambda w=0: subprocess.run(["python3", os.path.join(HERE, "gen.py"), D, str(w)], check=True)
# gen.py writes interval 30s; rewrite for other intervals
def write(w=0):
    gen(w)
    if interval != "30s":
        p = f"{D}/cluster.toml"; s = open(p).read().replace('interval = "30s"', f'interval = "{interval}"')
        open(p + ".n", "w").write(s); os.rename(p + ".n", p)
write()
log = open(f"{D}/log", "w")
p = subprocess.Popen([bin_, "-c", f"{D}/cluster.toml", "--log-format", "json"], stderr=log, stdout=log)
def status_of():
    return {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{p.pid}/status") if l.startswith(("VmRSS", "VmHWM"))}
def cpu_ms():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1000 / os.sysconf("SC_CLK_TCK")
def ask(cmd):
    s = socket.socket(socket.AF_UNIX); s.connect(f"{D}/vigil.sock")
    s.sendall(json.dumps({"command": cmd}).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(1 << 20)
        if not c: break
        buf += c
    s.close(); return buf
def ups():
    return sum(1 for l in open(f"{D}/log") if '"real server up' in l)
t0 = time.time()
while ups() < 10000 and time.time() - t0 < 300: time.sleep(0.5)
up_s = time.time() - t0
time.sleep(10)
rss0 = status_of()["VmRSS"]
c0, w0 = cpu_ms(), time.time(); time.sleep(cpu_s); c1, w1 = cpu_ms(), time.time()
per_s = 10000 / float(interval.rstrip("s"))
cpu_per_1000 = (c1 - c0) / (per_s * (w1 - w0)) * 1000
gen0 = json.loads(ask("status"))["result"]["config_generation"]
durs, rpeaks, radds, speaks, sadds, sms = [], [], [], [], [], []
for k in range(1, reloads + 1):
    write(2 + k % 50)
    open(f"/proc/{p.pid}/clear_refs", "w").write("5")
    before = status_of()["VmRSS"]
    os.kill(p.pid, signal.SIGHUP)
    while True:
        st = json.loads(ask("status"))["result"]
        if st["config_generation"] >= gen0 + k: break
        time.sleep(0.005)
    time.sleep(0.1)
    h = status_of()["VmHWM"]; rpeaks.append(h); radds.append(h - before)
    durs.append(st["reloads"][-1]["duration_ms"])
    if services:
        open(f"/proc/{p.pid}/clear_refs", "w").write("5")
        before = status_of()["VmRSS"]
        t = time.time(); n = len(ask("services")); sms.append((time.time() - t) * 1000)
        h = status_of()["VmHWM"]; speaks.append(h); sadds.append(h - before)
time.sleep(10)
rss1 = status_of()["VmRSS"]
c0, w0 = cpu_ms(), time.time(); time.sleep(cpu_s); c1, w1 = cpu_ms(), time.time()
cpu_after = (c1 - c0) / (per_s * (w1 - w0)) * 1000
p.send_signal(signal.SIGTERM); p.wait()
subprocess.run(["rm", "-rf", D])
M = lambda k: k / 1024
out = dict(label=label, bin=bin_, interval=interval, load=open("/proc/loadavg").read().split()[:3],
  up_s=round(up_s, 1), rss_start=round(M(rss0), 1), rss_after=round(M(rss1), 1),
  cpu_ms_per_1000=round(cpu_per_1000, 1), cpu_ms_per_1000_after=round(cpu_after, 1),
  reload_ms_p50=round(statistics.median(durs), 1) if durs else None, reload_ms_min=round(min(durs), 1) if durs else None,
  reload_ms_max=round(max(durs), 1) if durs else None,
  reload_peak=round(M(max(rpeaks)), 1) if rpeaks else None, reload_peak_x=round(max(rpeaks) / rss0, 2) if rpeaks else None,
  reload_add_max=round(M(max(radds)), 1) if radds else None,
  services_peak=round(M(max(speaks)), 1) if speaks else None, services_add_max=round(M(max(sadds)), 1) if sadds else None,
  services_ms_p50=round(statistics.median(sms)) if sms else None)
print(json.dumps(out), flush=True)
