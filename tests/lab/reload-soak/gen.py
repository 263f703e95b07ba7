"""The director bench's 1,000 x 10 cluster (checks every 30 s) into DIR/cluster.toml,
real server 5000 with weight W if given (write then rename). usage: gen.py DIR [W]"""
import sys, os
d = sys.argv[1]; w = int(sys.argv[2]) if len(sys.argv) > 2 else 0
vs, per, interval = 1000, 10, "30s"
s = f'[director]\nname = "bench"\nstatus_socket = "{d}/vigil.sock"\nstate_file = "{d}/state.json"\n'
for j in range(vs):
    s += f'\n[[virtual_server]]\nname = "vs{j}"\naddress = "10.201.{j//250}.{j%250+1}:80"\nscheduler = "wrr"\nforwarding = "nat"\ncheck = {{ kind = "tcp", interval = "{interval}", timeout = "500ms", rise = 1, fall = 3 }}\nreal_server = [\n'
    for r in range(per):
        i = j*per + r
        a = f"127.61.{i//250}.{i%250+1}:28471"
        if w and i == 5000:
            s += f'  {{ address = "{a}", weight = {w} }},\n'
        else:
            s += f'  {{ address = "{a}" }},\n'
    s += "]\n"
open(f"{d}/cluster.toml.new", "w").write(s)
os.rename(f"{d}/cluster.toml.new", f"{d}/cluster.toml")
