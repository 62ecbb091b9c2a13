#!/usr/bin/env python3
"""qossample.py SOCKET CLIENT SECONDS CHANGE_AT WORD...: samples CLIENT's
completed requests (reads + writes of nvme-drv-ctl stats) every 250 ms
for SECONDS, and at CHANGE_AT seconds sends "qos CLIENT WORD..." to the
server, all on one control connection (spec/ctl_proto.h), so that the
change and the samples share one clock. Prints "sample T N" lines (T in
seconds since the start, N the count) and one "change T ok|error".
"""
import re
import socket
import sys
import time

sock, client, secs, change_at = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
words = sys.argv[5:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
s.connect(sock)


def call(ws):
    s.send(b"".join(w.encode() + b"\0" for w in ws))
    return s.recv(65536).decode(errors="replace")


pat = re.compile(r"^client " + re.escape(client) + r" .*\breads=(\d+) writes=(\d+)", re.M)
t0 = time.monotonic()
changed = False
k = 0
while True:
    now = time.monotonic() - t0
    if now > secs:
        break
    if not changed and now >= change_at:
        r = call(["qos", client] + words)
        print("change %.4f %s" % (time.monotonic() - t0, "ok" if r.startswith("ok\n") else "error " + r.strip()))
        changed = True
    m = pat.search(call(["stats"]))
    if m:
        print("sample %.4f %d" % (time.monotonic() - t0, int(m.group(1)) + int(m.group(2))))
    k += 1
    nxt = k * 0.25
    if not changed and change_at < nxt:
        nxt = change_at
    delay = nxt - (time.monotonic() - t0)
    if delay > 0:
        time.sleep(delay)
sys.stdout.flush()
