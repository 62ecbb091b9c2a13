#!/usr/bin/env python3
"""ctlraw.py SOCKET WORD... : sends one raw request to nvme-drv's control
socket (spec/ctl_proto.h: NUL-terminated words in one SOCK_SEQPACKET
message) and prints the reply. Exit 0 for "ok", 1 for "error ...".
For tests that must reach the server past nvme-drv-ctl's own checks."""
import socket
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
s.connect(sys.argv[1])
s.send(b"".join(w.encode() + b"\0" for w in sys.argv[2:]))
reply = s.recv(65536).decode(errors="replace")
print(reply, end="" if reply.endswith("\n") else "\n")
sys.exit(0 if reply.startswith("ok\n") else 1)
