#!/usr/bin/env python3
"""Media errors at known sectors, under concurrent split requests.

mediaerr.py DEVICE THREADS ROUNDS SEED BAD_READ[:...] BAD_WRITE[:...]
    DEVICE has 512-byte blocks; reads covering any BAD_READ sector and
    writes covering any BAD_WRITE sector fail on the device (blkdebug).
    Each of THREADS threads owns 1 MiB (thread i: sectors 2048*i ...) and
    first fills it (writes that avoid the bad write sectors), then does
    ROUNDS vectored O_DIRECT reads and writes of 1-64 sectors at random
    places, from iovecs at odd multiples of 512 bytes in different pages
    (so a PRP-only driver splits them; many threads keep its queue full).
    Every request must fail with EIO exactly when it covers a bad sector
    of its kind, and succeed otherwise; every successful read must return
    what was last written (sectors no write could reach excepted).
    Prints a summary; exit 1 with the first few discrepancies otherwise.
"""
import errno
import mmap
import os
import random
import sys
import threading

PAGE, SECT, REGION = 4096, 512, 2048


def iovecs(rng, buf, nbytes):
    """Iovecs of 512..2048 bytes, each at an odd 512-multiple of its own page pair."""
    views, page, left = [], 0, nbytes
    while left:
        n = min(left, SECT * rng.randint(1, 4))
        off = rng.choice([o for o in range(512, 2 * PAGE - n + 1, 1024)] or [0])
        views.append(memoryview(buf)[page * PAGE + off:page * PAGE + off + n])
        page += 2
        left -= n
    return views


def worker(i, dev, rounds, seed, bad_r, bad_w, out):
    rng = random.Random(seed * 1000 + i)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, 160 * PAGE)
    base = i * REGION
    shadow = bytearray(REGION * SECT)
    known = [True] * REGION
    stats = {"reads": 0, "writes": 0, "eio": 0, "bad": []}

    def io(write, s, n, data=None):
        """Returns None on success (and the data read), or the errno."""
        vs = iovecs(rng, buf, n * SECT)
        if write:
            o = 0
            for v in vs:
                v[:] = data[o:o + len(v)]
                o += len(v)
        try:
            got = (os.pwritev if write else os.preadv)(fd, vs, (base + s) * SECT)
        except OSError as e:
            return e.errno, None
        if got != n * SECT:
            return -1, None
        return 0, (None if write else b"".join(bytes(v) for v in vs))

    def check(write, s, n):
        bad = bad_w if write else bad_r
        expect_fail = any(base + s <= b < base + s + n for b in bad)
        if write:
            data = rng.randbytes(n * SECT)
            rc, _ = io(True, s, n, data)
        else:
            rc, got = io(False, s, n)
        stats["writes" if write else "reads"] += 1
        what = f"{'write' if write else 'read'} of sectors {base + s}+{n}"
        if expect_fail:
            if rc == errno.EIO:
                stats["eio"] += 1
            else:
                stats["bad"].append(f"{what}: expected EIO, got {os.strerror(rc) if rc > 0 else rc}")
            if write:
                for k in range(s, s + n):
                    known[k] = False
            return
        if rc != 0:
            stats["bad"].append(f"{what}: {os.strerror(rc) if rc > 0 else 'short'}")
            return
        if write:
            shadow[s * SECT:(s + n) * SECT] = data
            for k in range(s, s + n):
                known[k] = True
        else:
            for k in range(n):
                if known[s + k] and got[k * SECT:(k + 1) * SECT] != shadow[(s + k) * SECT:(s + k + 1) * SECT]:
                    stats["bad"].append(f"{what}: sector {base + s + k} differs from what was written")
                    break

    # fill the region, around the bad write sectors
    s = 0
    while s < REGION:
        n = min(64, REGION - s)
        hit = [b - base for b in bad_w if base + s <= b < base + s + n]
        if hit:
            n = min(hit) - s
            if n == 0:
                known[s] = False
                s += 1
                continue
        check(True, s, n)
        s += n
    for _ in range(rounds):
        n = rng.choice([1, 1, 2, 3, 8, 16, rng.randint(1, 64)])
        s = rng.randrange(0, REGION - n + 1)
        # aim at a bad sector now and then
        bads = [b - base for b in bad_r + bad_w if base <= b < base + REGION]
        if bads and rng.random() < 0.3:
            b = rng.choice(bads)
            s = max(0, min(REGION - n, b - rng.randrange(0, n)))
        check(rng.random() < 0.5, s, n)
    out[i] = stats


def main():
    dev, threads, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    bad_r = [int(x) for x in sys.argv[5].split(":") if x]
    bad_w = [int(x) for x in sys.argv[6].split(":") if x]
    out = [None] * threads
    ts = [threading.Thread(target=worker, args=(i, dev, rounds, seed, bad_r, bad_w, out))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if any(o is None for o in out):
        print("a thread died")
        return 1
    reads = sum(o["reads"] for o in out)
    writes = sum(o["writes"] for o in out)
    eio = sum(o["eio"] for o in out)
    bad = [b for o in out for b in o["bad"]]
    print(f"{reads} reads, {writes} writes, {eio} EIO exactly where expected, {len(bad)} discrepancies")
    for b in bad[:5]:
        print(b)
    return 1 if bad or not eio else 0


if __name__ == "__main__":
    sys.exit(main())
