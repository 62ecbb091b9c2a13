#!/usr/bin/env python3
"""Host-side check of a disk image after a run.

imgcheck.py BEFORE AFTER LBA_SIZE [--pattern|--rel-pattern|--zero|--any FIRST:COUNT]...

Every byte outside the given ranges must be unchanged from BEFORE. Every
logical block inside a --pattern range must carry nvme-drv-perf's verify
pattern, whose first 8 bytes are the block's own LBA (little-endian);
inside a --rel-pattern range, nvme-drv-io's, whose first 8 bytes are the
512-byte sector number within the client's device (the range starts at
sector 0). Inside a --zero range every byte must be zero; inside an --any
range anything goes (a file system's blocks). The first range that holds
a block decides. Prints one line per problem (at most 10) and exits 1 on
any.
"""
import struct
import sys


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    before, after, lbs = args[0], args[1], int(args[2])
    ranges = []
    rest = args[3:]
    while rest:
        if rest[0] not in ("--pattern", "--rel-pattern", "--zero", "--any") or len(rest) < 2:
            print("imgcheck: bad arguments", file=sys.stderr)
            return 2
        first, count = (int(x) for x in rest[1].split(":"))
        ranges.append((first, first + count, rest[0][2:]))
        rest = rest[2:]
    problems = 0
    chunk = 1 << 20
    with open(before, "rb") as fb, open(after, "rb") as fa:
        off = 0
        while True:
            a = fa.read(chunk)
            b = fb.read(chunk)
            if not a and not b:
                break
            if len(a) != len(b):
                print(f"size differs near byte {off}")
                return 1
            for i in range(0, len(a), lbs):
                lba = (off + i) // lbs
                blk = a[i:i + lbs]
                inside = [r for r in ranges if r[0] <= lba < r[1]]
                if inside:
                    lo, _, kind = inside[0]
                    if kind == "any":
                        continue
                    if kind == "zero":
                        if blk.count(0) != len(blk):
                            problems += 1
                            if problems <= 10:
                                print(f"LBA {lba}: not zero")
                        continue
                    want = (lba - lo) * (lbs // 512) if kind == "rel-pattern" else lba
                    got = struct.unpack_from("<Q", blk)[0]
                    if got != want:
                        problems += 1
                        if problems <= 10:
                            print(f"LBA {lba}: first word {got}, expected {want}")
                elif blk != b[i:i + lbs]:
                    problems += 1
                    if problems <= 10:
                        print(f"LBA {lba}: changed outside the written ranges")
            off += len(a)
    if problems:
        print(f"{problems} bad blocks")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
