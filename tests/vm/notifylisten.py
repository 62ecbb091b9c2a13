#!/usr/bin/env python3
"""notifylisten.py NOTIFY_PATH LOG [seq:PATH|stream:PATH...]

A service manager's end of sd_notify: binds a datagram socket at NOTIFY_PATH
and writes every line it is sent to LOG. The moment READY=1 arrives it
connects to each socket given (seq: a SOCK_SEQPACKET control socket,
stream: a vhost-user socket) and logs "accepts PATH" or "refuses PATH: why",
which is what READY=1 promises. Ends at STOPPING=1 or after 300 s.
"""
import socket
import sys

TYPES = {"seq": socket.SOCK_SEQPACKET, "stream": socket.SOCK_STREAM}


def main():
    path, log_path, socks = sys.argv[1], sys.argv[2], sys.argv[3:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(300)
    with open(log_path, "w", buffering=1) as log:
        while True:
            try:
                lines = s.recv(4096).decode(errors="replace").split("\n")
            except socket.timeout:
                log.write("timeout\n")
                return 1
            for line in lines:
                log.write(f"got {line}\n")
            if "READY=1" in lines:
                for spec in socks:
                    kind, p = spec.split(":", 1)
                    c = socket.socket(socket.AF_UNIX, TYPES[kind])
                    try:
                        c.connect(p)
                        log.write(f"accepts {p}\n")
                    except OSError as e:
                        log.write(f"refuses {p}: {e}\n")
                    c.close()
            if "STOPPING=1" in lines:
                return 0


if __name__ == "__main__":
    sys.exit(main())
