#!/usr/bin/env python3
"""bench/hostcpu.py: where the host's CPU goes during each measured point.

Under TCG the guest cannot see the host: its vCPUs and QEMU's device
emulation (the NVMe controller, the disk image's I/O) share the host's cores,
and a guest thread that spins holds a whole host core. This filter sits on
the stderr of tests/vm/run (the guest's stderr streams through it and is
passed on unchanged, but for the marks) and, at the marks
bench/guest-lib.sh's measure() prints around each point ("bench-mark:
begin|end PATH POINT RUN"), reads the CPU time of every thread of the
guest's QEMU (/proc/PID/task/*/schedstat, ns) and the host's /proc/stat. It
writes WORK/r/PATH/POINT/RUN.host:

  wall_ns     host time between the two marks
  vcpu_ns     QEMU's vCPU threads ("CPU N/TCG"): everything the guest ran
  main_ns     QEMU's main thread: device emulation (NVMe queues, MSI-X)
  other_ns    QEMU's other threads (the image's I/O workers, RCU)
  host_busy, host_total, hz, ncpu   the host's /proc/stat "cpu" ticks

Each thread counts what it ran between the marks: a thread that ended in
between loses its last part, one that started counts from zero (QEMU's I/O
workers come and go). The marks reach the host through a file that
tests/vm/run follows every 0.1 s, so both ends of the window are late by
about the same amount. Nothing here may stop the run: on any error the
filter only copies what it reads.

  hostcpu.py WORK ROOT-PID     (QEMU is found among ROOT-PID's descendants)
"""
import os
import re
import signal
import sys
import time

MARK = re.compile(rb'^bench-mark: (begin|end) (\S+) (\S+) (\S+)\s*$')
VCPU = re.compile(r'^CPU \d+/(TCG|KVM)')


def parent(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            s = f.read()
        return int(s[s.rindex(')') + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def find_qemu(root):
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            with open('/proc/%d/comm' % pid) as f:
                if not f.read().startswith('qemu-system'):
                    continue
        except OSError:
            continue
        p = pid
        for _ in range(64):
            p = parent(p)
            if p == root:
                return pid
            if p <= 1:
                break
    return 0


def host_ticks():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # busy = user nice system irq softirq steal (as bench/guest-lib.sh's sys_snap)
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy, busy + v[3] + v[4]


def snap(qemu):
    """Every thread's (class, ns), the host's ticks and the time."""
    threads = {}
    tdir = '/proc/%d/task' % qemu
    for t in os.listdir(tdir):
        try:
            with open('%s/%s/comm' % (tdir, t)) as f:
                comm = f.read().strip()
            with open('%s/%s/schedstat' % (tdir, t)) as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        k = 'main_ns' if int(t) == qemu else 'vcpu_ns' if VCPU.match(comm) else 'other_ns'
        threads[t] = (k, ns)
    busy, total = host_ticks()
    return dict(threads=threads, host_busy=busy, host_total=total, t=time.monotonic_ns())


def write_host(work, key, s0, s):
    d = dict(vcpu_ns=0, main_ns=0, other_ns=0)
    for t, (k, ns) in s['threads'].items():
        d[k] += ns - s0['threads'].get(t, (k, 0))[1]
    path = os.path.join(work, 'r', *key) + '.host'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('wall_ns=%d\n' % (s['t'] - s0['t']))
        for k in ('vcpu_ns', 'main_ns', 'other_ns'):
            f.write('%s=%d\n' % (k, d[k]))
        for k in ('host_busy', 'host_total'):
            f.write('%s=%d\n' % (k, s[k] - s0[k]))
        f.write('hz=%d\nncpu=%d\n' % (os.sysconf('SC_CLK_TCK'), os.cpu_count()))


def main():
    # Ctrl-C goes to the whole job: tests/vm/run handles it and says so on
    # stderr, which must still reach the terminal through here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stderr.buffer
    work, root = sys.argv[1], int(sys.argv[2])
    qemu, begun = 0, {}
    try:
        for line in inp:
            m = MARK.match(line)
            if not m:
                out.write(line)
                out.flush()
                continue
            what = m.group(1)
            key = tuple(g.decode(errors='replace') for g in m.group(2, 3, 4))
            try:
                if not qemu or not os.path.isdir('/proc/%d' % qemu):
                    qemu = find_qemu(root)
                if not qemu:
                    continue
                s = snap(qemu)
                if what == b'begin':
                    begun[key] = (qemu, s)
                    continue
                q0, s0 = begun.pop(key, (0, None))
                if s0 and q0 == qemu:
                    write_host(work, key, s0, s)
            except OSError as e:
                out.write(('bench/hostcpu.py: %s\n' % e).encode())
                qemu = 0
    except Exception as e:  # never stop the run: copy the rest as it comes
        out.write(('bench/hostcpu.py: %r; host CPU no longer read\n' % e).encode())
        out.flush()
        for line in inp:
            out.write(line)
            out.flush()
    out.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
