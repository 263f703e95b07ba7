# 10,000 loopback listeners 127.61.x.y:28471 (the director bench's real servers): bound and
# listening, never accepting (the kernel completes each check's handshake; the checker resets it).
import socket, time, sys
socks = []
for i in range(10000):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f"127.61.{i//250}.{i%250+1}", 28471)); s.listen(4096); socks.append(s)
print("listening", len(socks), flush=True)
while True: time.sleep(3600)
