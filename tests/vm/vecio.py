#!/usr/bin/env python3
"""Vectored O_DIRECT I/O with small iovecs scattered over pages.

vecio.py DEVICE LBS SPAN_MIB ROUNDS SEED
    Each round writes random bytes with os.pwritev from 1..16 iovecs, each
    a multiple of LBS long and starting at an odd multiple of 512 bytes
    into a page of its own (so that consecutive iovecs break mid-page and
    a PRP-only driver must split or bounce), to a random LBS-aligned place
    in the first SPAN_MIB MiB of DEVICE; then reads the same range back
    with os.preadv through a different random layout and compares. The
    buffer is an anonymous mmap (page aligned), so every address is as
    chosen. At the end the whole span is read back plainly and compared
    with what was written. Prints one summary line; exit 1 at the first
    error (an exception, a short transfer or a mismatch), saying where.
"""
import mmap
import os
import random
import sys

PAGE = 4096


def layout(rng, buf, lbs, total_blocks, first_page):
    """Iovecs covering total_blocks blocks, one per 2-page slot."""
    views, page, left = [], first_page, total_blocks
    while left:
        n = min(left, rng.randint(1, max(1, PAGE // lbs)))
        ln = n * lbs
        odd = [o for o in range(512, 2 * PAGE - ln + 1, 1024)] or [0]
        off = rng.choice(odd)
        start = page * PAGE + off
        views.append(memoryview(buf)[start:start + ln])
        page += 2
        left -= n
    return views


def main():
    dev, lbs, span_mib, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    span = span_mib << 20
    rng = random.Random(seed)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, 160 * PAGE)
    shadow = bytearray(os.pread(os.open(dev, os.O_RDONLY), span, 0))
    nvec = 0
    for r in range(rounds):
        blocks = rng.randint(1, 16)
        pos = rng.randrange(0, span // lbs - blocks) * lbs
        data = rng.randbytes(blocks * lbs)
        wv = layout(rng, buf, lbs, blocks, 0)
        o = 0
        for v in wv:
            v[:] = data[o:o + len(v)]
            o += len(v)
        try:
            n = os.pwritev(fd, wv, pos)
        except OSError as e:
            print(f"round {r}: pwritev of {len(wv)} iovecs ({[len(v) for v in wv]}) at {pos}: {e}")
            return 1
        if n != len(data):
            print(f"round {r}: pwritev wrote {n} of {len(data)}")
            return 1
        shadow[pos:pos + len(data)] = data
        rv = layout(rng, buf, lbs, blocks, 80)
        for v in rv:
            v[:] = b"\xee" * len(v)
        try:
            n = os.preadv(fd, rv, pos)
        except OSError as e:
            print(f"round {r}: preadv of {len(rv)} iovecs at {pos}: {e}")
            return 1
        got = b"".join(bytes(v) for v in rv)
        if n != len(data) or got != data:
            bad = next(i for i in range(len(data)) if i >= len(got) or got[i] != data[i])
            print(f"round {r}: read back differs at byte {bad} of {len(data)} (disk offset {pos})")
            return 1
        nvec += len(wv) + len(rv)
    os.close(fd)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    m = mmap.mmap(-1, span)
    if os.preadv(fd, [m], 0) != span or m[:] != shadow:
        print("final read of the span differs from what was written")
        return 1
    print(f"{rounds} rounds, {nvec} iovecs, all read back intact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
