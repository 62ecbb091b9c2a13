#!/usr/bin/env python3
"""bench/report.py's arithmetic: the bound of two stages sharing a depth,
and the host table of bench/hostcpu.py's files, on made-up runs.
  test_report.py PATH-TO-report.py"""
import importlib.util
import os
import subprocess
import sys
import tempfile

spec = importlib.util.spec_from_file_location('report', sys.argv[1])
r = importlib.util.module_from_spec(spec)
spec.loader.exec_module(r)
failed = n = 0


def check(cond, what):
    global failed, n
    n += 1
    if not cond:
        failed += 1
        print('FAIL: ' + what)


def near(a, b, tol=1e-6):
    return abs(a - b) <= tol * max(1.0, abs(b))


# One request in the loop: the serial composition 1/(1/a + 1/b).
a = [(1, 3000), (8, 40000), (32, 70000)]
b = [(1, 20000), (8, 45000), (32, 60000)]
x, na, nb = r.shared_depth(a, b, 1)
check(near(x, 1 / (1 / 3000 + 1 / 20000)), 'QD1 is the serial composition (%g)' % x)
check(near(na + nb, 1), 'QD1: the stages hold one request (%g + %g)' % (na, nb))
# Two pure delays (rate = depth / R): the loop's rate is N / (Ra + Rb).
da = [(d, d / 100e-6) for d in (1, 2, 4, 8, 16, 32)]
db = [(d, d / 200e-6) for d in (1, 2, 4, 8, 16, 32)]
x, na, nb = r.shared_depth(da, db, 32)
check(near(x, 32 / 300e-6, 1e-4), 'two delays: N/(Ra+Rb) (%g)' % x)
check(near(na, 32 / 3, 1e-3) and near(nb, 64 / 3, 1e-3), 'two delays: split by R (%g + %g)' % (na, nb))
# At QD32 by hand: a = 40000 + 1250 (n - 8), b = 45000 + 625 (m - 8) between
# depths 8 and 32 meet at n = m = 16, 50000 IOPS: below min(a, b) = 60000.
x32, na, nb = r.shared_depth(a, b, 32)
check(near(x32, 50000, 1e-6) and near(na, 16, 1e-6) and near(nb, 16, 1e-6),
      'QD32 by hand: 50000 at 16 + 16 (%g at %g + %g)' % (x32, na, nb))
check(r.shared_depth(a, b, 8)[0] < x32, 'more depth, more rate')
# A depth beyond what both stages need: the slower stage's top rate.
x, _, _ = r.shared_depth(a, b, 1000)
check(near(x, 60000), 'deep enough: the slower stage (%g)' % x)
check(near(r.stage_rate(a, 0.5), 1500), 'below its lowest depth a stage goes n/d0 of its rate there')
check(near(r.stage_rate(a, 20), 55000), 'between depths: linear (%g)' % r.stage_rate(a, 20))
check(near(r.stage_rate(a, 64), 70000), 'past its deepest point a stage stays')
# A dip at a greater depth (noise) does not make a stage slower: each point
# is raised to the best of the lower depths, so the curve stays monotone.
dip = [(1, 6000), (8, 54000), (16, 56000), (32, 50000)]
check(near(r.stage_rate(dip, 32), 56000) and near(r.stage_rate(dip, 24), 56000),
      'a dip is raised to the best lower depth')
fast = [(1, 25000), (8, 67000), (32, 94000)]
x, na, nb = r.shared_depth(dip, fast, 32)
check(near(x, 56000, 1e-6) and near(na + nb, 32), 'dip: the loop reaches the transport\'s best (%g)' % x)
check(r.shared_depth([], fast, 4) is None, 'no points, no bound')

# The whole report on a made-up work directory.
with tempfile.TemporaryDirectory() as w:
    def run(path, point, iops, host=None, meta=''):
        d = os.path.join(w, 'r', path, point)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, '1.out.1'), 'w') as f:
            f.write('randread: ios=%d time=1.00s iops=%d p50=10.0 p99=20.0\n' % (iops, iops))
        with open(os.path.join(d, '1.meta'), 'w') as f:
            f.write('srv_ns=1000000\nsrv_slices=1\nsrv_vcs=1\nsys_busy=10\nsys_total=200\nhz=100\n'
                    'wall_ns=1000000000\n' + meta)
        if host:
            with open(os.path.join(d, '1.host'), 'w') as f:
                f.write('wall_ns=1000000000\nvcpu_ns=%d\nmain_ns=%d\nother_ns=%d\n'
                        'host_busy=150\nhost_total=200\nhz=100\nncpu=2\n' % host)
    for d, (ia, ib, idrv) in {1: (3000, 20000, 2700), 32: (70000, 60000, 40000)}.items():
        run('null', 'randread-4k-%d' % d, ia)
        run('perf', 'randread-4k-%d' % d, ib)
        run('drv', 'randread-4k-%d' % d, idrv, (1200000000, 300000000, 100000000) if d == 32 else None,
            'dev_cmds=40000\ndev_us=20000000\ndev_wall_ns=1000000000\n' if d == 32 else '')
    out = subprocess.run([sys.executable, sys.argv[1], w, '--paths', 'drv=D,null=N,perf=P',
                          '--vs', 'null,perf', '--bound', 'null,perf', '--depth-bound', 'null,perf'],
                         capture_output=True, text=True)
    check(out.returncode == 0, 'report.py runs (%s)' % out.stderr.strip())
    t = out.stdout
    # a = 3000 + 67000 (n - 1) / 31, b = 20000 + 40000 (m - 1) / 31, m = 32 - n,
    # meet at n = 1834000 / 107000 = 17.14, 37884 IOPS (by hand).
    check('| randread 4k QD32 | 40000 | 60000 | 0.67 | 37884 | 1.06 | 17.1 + 14.9 |' in t,
          'depth table row for QD32:\n' + t)
    # 1.2 s of vCPU and 0.4 s of emulation in 1 s, 40000 I/Os; 150/200 ticks on 2 CPUs.
    check('| randread 4k QD32 | D | 40000 | 1.50 | 1.20 | 0.40 | 30.0 | 10.0 | 1 |' in t,
          'host table row:\n' + t)
    check(t.count('| randread 4k QD1 | D |') == 0, 'no host row where no .host file was written')
    # 40000 commands, 20 s at the device in 1 s: 500 us each, 20 there on
    # average; a request's mean latency 32 / 40000 IOPS = 800 us.
    check('| randread 4k QD32 | D | 40000 | 800.0 | 500.0 | 20.00 of 32 | 62 % |' in t,
          'device table row:\n' + t)

print('%d checks, %d failed' % (n, failed))
sys.exit(1 if failed else 0)
