#!/usr/bin/env python3
"""ctlraw.py SOCKET WORD... : sends one raw request to nvme-drv's control
socket (spec/ctl_proto.h: NUL-terminated words in one SOCK_SEQPACKET
message) and prints the reply: its first message, with the pieces of any
"more" parts before the last joined as the one reply they are. Exit 0 for
"ok", 1 for "error ...".
For tests that must reach the server past nvme-drv-ctl's own checks."""
import socket
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
s.connect(sys.argv[1])
s.send(b"".join(w.encode() + b"\0" for w in sys.argv[2:]))
pieces = []
while True:
    msg = s.recv(65536)
    if not msg.startswith(b"more\n"):
        break
    pieces.append(msg[5:])
if pieces:
    if not msg.startswith(b"ok\n"):
        sys.exit("ctlraw.py: a long reply that does not end in ok: %r" % msg[:80])
    msg = b"ok\n" + b"".join(pieces) + msg[3:]
reply = msg.decode(errors="replace")
print(reply, end="" if reply.endswith("\n") else "\n")
sys.exit(0 if reply.startswith("ok\n") else 1)
