#!/usr/bin/env python3
"""Acknowledged writes must survive: a write-then-fsync log.

fsynclog.py write DEVICE OFFSET SLOTS LOG
    Writes 4 KiB records 0, 1, 2, ... round a ring of SLOTS slots at OFFSET
    of DEVICE (record N in slot N % SLOTS), each followed by fsync(); once
    fsync has returned success for record N, N is appended to LOG (flushed
    at once). Runs until a write or fsync fails, as they do when the
    device's server stops, then prints "stopped at record N: ERROR" and how
    many records were acknowledged; exit 0, or 1 if none was.
fsynclog.py check DEVICE OFFSET SLOTS LOG
    Every slot must hold the last acknowledged record written to it, or, for
    the one slot the write that failed went to, that record instead (it may
    or may not have reached the disk). Exit 1, with one line per bad slot
    (at most 10), if one does not, or if LOG is empty.
"""
import os
import sys

RECORD = 4096


def record(n):
    line = b"nvme-drv fsync record %010d\n" % n
    return (line * (RECORD // len(line) + 1))[:RECORD]


def write(dev, offset, slots, log):
    acked = 0
    fd = os.open(dev, os.O_WRONLY)
    with open(log, "w") as lf:
        n = 0
        while True:
            try:
                os.pwrite(fd, record(n), offset + (n % slots) * RECORD)
                os.fsync(fd)
            except OSError as e:
                print(f"stopped at record {n}: {e.strerror}")
                break
            lf.write(f"{n}\n")
            lf.flush()
            acked = n + 1
            n += 1
    try:
        os.close(fd)
    except OSError:
        pass
    print(f"{acked} records acknowledged")
    return 0 if acked else 1


def check(dev, offset, slots, log):
    with open(log) as lf:
        numbers = [int(x) for x in lf.read().split()]
    if not numbers:
        print("no acknowledged record to check")
        return 1
    last = max(numbers)
    latest = {}
    for n in numbers:
        latest[n % slots] = max(n, latest.get(n % slots, -1))
    bad = 0
    fd = os.open(dev, os.O_RDONLY)
    for slot, n in sorted(latest.items()):
        got = os.pread(fd, RECORD, offset + slot * RECORD)
        if got == record(n) or (n + slots == last + 1 and got == record(last + 1)):
            continue
        bad += 1
        if bad <= 10:
            print(f"slot {slot}: acknowledged record {n} is not there")
    os.close(fd)
    print(f"{len(numbers)} acknowledged records, {len(latest)} slots checked, {bad} bad")
    return 1 if bad else 0


def main():
    a = sys.argv[1:]
    if len(a) == 5 and a[0] in ("write", "check"):
        fn = write if a[0] == "write" else check
        return fn(a[1], int(a[2]), int(a[3]), a[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
