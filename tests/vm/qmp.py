#!/usr/bin/env python3
"""Sends one QMP command to a QEMU started by tests/vm/run --qmp PATH.

qmp.py PATH COMMAND [JSON-ARGUMENTS]
    Connects (waiting up to 30 s for the socket), negotiates capabilities,
    sends COMMAND with the arguments object if given, and prints the
    "return" value as JSON. Exit 1, printing the error, if QEMU answers
    with one or the socket never appears.

Example: qmp.py /tmp/q.sock qom-set '{"path": "tgnvme0n1", "property": "limits",
                                      "value": {"iops-total": 1}}'
"""
import json
import socket
import sys
import time


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(300):
        try:
            s.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    else:
        print(f"qmp: cannot connect to {path}")
        return 1
    f = s.makefile("rw")

    def answer():
        while True:
            m = json.loads(f.readline())
            if "event" not in m:
                return m

    answer()  # the greeting
    f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
    f.flush()
    answer()
    msg = {"execute": cmd}
    if args is not None:
        msg["arguments"] = args
    f.write(json.dumps(msg) + "\n")
    f.flush()
    m = answer()
    if "error" in m:
        print(f"qmp: {cmd}: {m['error'].get('desc', m['error'])}")
        return 1
    print(json.dumps(m.get("return")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
