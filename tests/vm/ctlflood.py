#!/usr/bin/env python3
"""ctlflood.py SOCKET N READY HOLD_S : opens N connections to nvme-drv's
control socket without sending anything, and reports how the server took
them:
  accepted=A refused=R            A still open after 1 s, R answered and closed
  refusal: <the first refusal's message line>
Then it creates the file READY and keeps the accepted connections for up to
HOLD_S seconds, waiting for the server to close them as idle:
  closed-idle=K after=S           K of them closed, the last after S s
  idle: <the first idle close's message line>
Exit 0; the test judges the numbers."""
import select
import socket
import sys
import time

path, n, ready, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
socks, failed = [], 0
for _ in range(n):
    # Blocking: a non-blocking connect fails with EAGAIN while the
    # server's backlog is full, which says nothing about the server.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
        socks.append(s)
    except OSError:
        failed += 1
        s.close()
time.sleep(1)


def reply(s):
    """The message the server sent before it hung up, or None."""
    try:
        data = s.recv(65536)
    except OSError:
        return None
    return data.decode(errors="replace").replace("\n", " ").strip() or None


accepted, first = [], None
for s in socks:
    r, _, _ = select.select([s], [], [], 0)
    if r:
        msg = reply(s)
        first = first or msg
        s.close()
    else:
        accepted.append(s)
print(f"accepted={len(accepted)} refused={len(socks) - len(accepted)} connect-failed={failed}")
print(f"refusal: {first}")
sys.stdout.flush()
open(ready, "w").close()

start, closed, first, last = time.monotonic(), 0, None, 0.0
pending = list(accepted)
while pending and time.monotonic() - start < hold:
    r, _, _ = select.select(pending, [], [], 0.5)
    for s in r:
        msg = reply(s)
        first = first or msg
        closed += 1
        last = time.monotonic() - start
        pending.remove(s)
        s.close()
for s in pending:
    s.close()
print(f"closed-idle={closed} after={last:.0f}")
print(f"idle: {first}")
