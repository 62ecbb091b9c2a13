#!/usr/bin/env python3
"""bench/report.py: the tables of bench/raw, compare, clients and spdk.

Reads WORK/r/PATH/POINT/RUN.{out*,meta} (written in the guest by
bench/guest-lib.sh) and RUN.host where bench/hostcpu.py wrote one and prints Markdown tables: per point, every path's
median IOPS over its runs with their spread (min/median-max/median),
median p50/p99/p99.9 latency, the server's CPU per I/O (schedstat) and the
whole guest's CPU per I/O (/proc/stat); the host's CPU in QEMU's vCPU and
emulation threads; then nvme-drv's ratios against the
peers and against the path's bound; then idle CPU and wake-ups per second.

  report.py WORK --paths KEY=LABEL,... [--drv KEY] [--vs KEY,...]
            [--bound TRANSPORT-CEILING-KEY,DRIVER-CEILING-KEY]
            [--depth-bound TRANSPORT-CEILING-KEY,DRIVER-CEILING-KEY] [--md FILE]

The bound of a path made of a transport (ceiling a: the most any server gets
through it) and a driver (ceiling b: the device through our driver alone) is
their serial composition 1/(1/a + 1/b) at one request in flight (the two
latencies add up) and min(a, b) at depth (the slower stage limits).
With --depth-bound (bench/depth: both ceilings measured at several depths)
also the rate of a loop of the two stages that share the client's depth
(see shared_depth).
"""
import argparse
import json
import os
import re
import statistics
import sys


def read_meta(f):
    m = {}
    with open(f) as fh:
        for line in fh:
            k, _, v = line.strip().partition('=')
            if k:
                try:
                    m[k] = float(v)
                except ValueError:
                    m[k] = v
    return m


def parse_fio(text):
    i = text.find('{')
    if i < 0:
        return None
    j = json.loads(text[i:])['jobs'][0]
    if j.get('error'):
        return None
    d = j['read'] if j['read']['total_ios'] > 0 else j['write']
    pct = d.get('clat_ns', {}).get('percentile', {})

    def p(q):
        for k, v in pct.items():
            if abs(float(k) - q) < 1e-6:
                return v / 1000.0
        return None
    return dict(iops=d['iops'], ios=d['total_ios'], p50=p(50), p99=p(99), p999=p(99.9))


NVD_RE = re.compile(r'ios=(\d+) time=[\d.]+s iops=(\d+)')


def parse_nvd(text):
    """nvme-drv-io / nvme-drv-perf: the last 'PHASE: ios=.. iops=..' line."""
    r = None
    for line in text.splitlines():
        m = NVD_RE.search(line)
        if not m:
            continue
        r = dict(iops=float(m.group(2)), ios=float(m.group(1)), p50=None, p99=None, p999=None)
        for k, key in (('p50', 'p50'), ('p99', 'p99'), ('p999', r'p99\.9')):
            mm = re.search(r'\b' + key + r'=([\d.]+)', line)
            if mm:
                r[k] = float(mm.group(1))
    return r


def parse_spdk(text, secs):
    """spdk_nvme_perf: the 'Total :' line; percentiles from -L's summary."""
    r = None
    for line in text.splitlines():
        m = re.match(r'\s*Total\s*:\s*([\d.]+)', line)
        if m:
            iops = float(m.group(1))
            r = dict(iops=iops, ios=iops * secs, p50=None, p99=None, p999=None)
    if r:
        for k, q in (('p50', '50.00000'), ('p99', '99.00000'), ('p999', '99.90000')):
            m = re.search(r'^\s*' + re.escape(q) + r'%\s*:\s*([\d.]+)us', text, re.M)
            if m:
                r[k] = float(m.group(1))
    return r


def parse_run(base):
    """One run: its .out (or .out.N for N clients) and .meta -> dict or None."""
    meta = read_meta(base + '.meta')
    d = os.path.dirname(base)
    run = os.path.basename(base)
    outs = sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f == run + '.out' or f.startswith(run + '.out.'))
    secs = meta.get('wall_ns', 0) / 1e9
    parts = []
    for f in outs:
        text = open(f, errors='replace').read()
        if 'Total' in text and 'NSID' in text:
            r = parse_spdk(text, meta.get('secs', secs))
        elif text.lstrip().startswith('{') or '"fio version"' in text:
            r = parse_fio(text)
        else:
            r = parse_nvd(text)
        parts.append(r)
    if not parts or any(p is None for p in parts):
        return None
    r = dict(iops=sum(p['iops'] for p in parts), ios=sum(p['ios'] for p in parts))
    # Several clients: how evenly they were served (most / least IOPS).
    lo = min(p['iops'] for p in parts)
    r['mm'] = (max(p['iops'] for p in parts) / lo if lo else float('inf')) if len(parts) > 1 else None

    def agg(k, fn):
        v = [p[k] for p in parts if p[k] is not None]
        return fn(v) if v else None
    # Several clients: mean p50, worst client's p99 and p99.9 (aggregate of
    # the latency logs is not available from the tools' summaries).
    r['p50'] = agg('p50', statistics.mean)
    r['p99'] = agg('p99', max)
    r['p999'] = agg('p999', max)
    ios = r['ios']
    r['srv'] = meta['srv_ns'] / 1e3 / ios if ios and meta.get('srv_ns') else None
    hz = meta.get('hz', 100)
    r['sys'] = meta['sys_busy'] / hz * 1e6 / ios if ios else None
    if not ios:
        return None
    r['host'] = host_of(base, ios)
    # nvme-drv-ctl stats around the point (guest-lib.sh's DEV_CTL): a
    # command's mean time at the device, and how many were there on average.
    if meta.get('dev_cmds', 0) > 0 and meta.get('dev_us', -1) >= 0 and meta.get('dev_wall_ns', 0) > 0:
        r['dev'] = dict(us=meta['dev_us'] / meta['dev_cmds'],
                        n=meta['dev_us'] * 1e3 / meta['dev_wall_ns'])
    else:
        r['dev'] = None
    return r


def host_of(base, ios):
    """bench/hostcpu.py's RUN.host: QEMU's threads' host CPU over the point."""
    if not os.path.exists(base + '.host'):
        return None
    h = read_meta(base + '.host')
    w = h.get('wall_ns')
    if not w:
        return None
    emu = h['main_ns'] + h['other_ns']
    return dict(cores=(h['vcpu_ns'] + emu) / w, vcpu=h['vcpu_ns'] / w, emu=emu / w,
                busy=h['host_busy'] / max(h['host_total'], 1) * h.get('ncpu', 1),
                vcpu_io=h['vcpu_ns'] / 1e3 / ios, emu_io=emu / 1e3 / ios)


def idle_run(base):
    m = read_meta(base + '.meta')
    s = m['wall_ns'] / 1e9
    return dict(cpu=m['srv_ns'] / m['wall_ns'] * 100, wake=m['srv_slices'] / s, vcs=m['srv_vcs'] / s,
                sys=m['sys_busy'] / max(m['sys_total'], 1) * 100)


def runs_of(work, path, point):
    d = os.path.join(work, 'r', path, point)
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f[:-5]) for f in os.listdir(d) if f.endswith('.meta'))


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(x, nd=0):
    if x is None:
        return '-'
    if nd == 0:
        return '%.0f' % x
    return '%.*f' % (nd, x)


def spread(v, m):
    v = [x for x in v if x is not None]
    if not v or not m:
        return '-'
    return '%.2f-%.2f' % (min(v) / m, max(v) / m)


POINT_RE = re.compile(r'^(\w+)-(\w+)-(\d+)(?:-c(\d+))?(?:-r(\d+))?$')


def point_label(p):
    m = POINT_RE.match(p)
    if not m:
        return p
    rw, bs, qd, c, r = m.groups()
    s = '%s %s QD%s' % (rw, bs, qd)
    if c:
        s += ', %s clients' % c
    if r:
        s += ', at most %s IOPS' % r
    return s


def point_qd1(p):
    m = POINT_RE.match(p)
    return bool(m) and m.group(3) == '1' and (m.group(4) in (None, '1'))


def stage_rate(curve, n):
    """The rate of a stage holding n requests (n may be fractional), from its
    measured (depth, IOPS) points: each point is raised to the best rate of
    any lower depth (holding more requests does not make a stage slower; a
    dip is the runs' noise), the rate is interpolated linearly over depth,
    below the lowest depth d0 it is n/d0 of the rate there (Little's law
    with that depth's response time), above the highest it stays."""
    env, best = [], 0.0
    for d, i in sorted((d, i) for d, i in curve if i):
        best = max(best, i)
        env.append((d, best))
    if not env:
        return None
    if n <= env[0][0]:
        return env[0][1] * n / env[0][0]
    for (d0, x0), (d1, x1) in zip(env, env[1:]):
        if n <= d1:
            return x0 + (x1 - x0) * (n - d0) / (d1 - d0)
    return env[-1][1]


def shared_depth(ca, cb, n):
    """The rate of a loop of two stages (curves ca, cb) holding n requests
    between them: with n_a in the first and n - n_a in the second both go at
    one rate, the most the loop can (the split that maximises the slower of
    the two: one stage's rate grows with n_a, the other's falls). Returns
    (rate, n_a, n_b), or None without points."""
    if stage_rate(ca, 1) is None or stage_rate(cb, 1) is None:
        return None
    lo, hi = 0.0, float(n)
    for _ in range(60):
        mid = (lo + hi) / 2
        if stage_rate(ca, mid) < stage_rate(cb, n - mid):
            lo = mid
        else:
            hi = mid
    x = max(min(stage_rate(ca, lo), stage_rate(cb, n - lo)), min(stage_rate(ca, hi), stage_rate(cb, n - hi)))
    return x, lo, n - lo


def depth_table(summary, pts, drv, a, b, label):
    """--depth-bound A,B: nvme-drv at each depth against the loop of A and B."""
    def key(p):
        m = POINT_RE.match(p)
        return (m.group(1), m.group(2), m.group(4), m.group(5)) if m else None

    def qd(p):
        return int(POINT_RE.match(p).group(3))
    out = ['\n### %s against its stages sharing the depth\n' % label[drv],
           'min(a, b): the slower stage at the same depth (issue 11\'s bound at depth); shared: the rate'
           ' of a loop of the two stages holding the client\'s depth between them (bench/depth).\n',
           '| point | %s IOPS | min(a, b) | %s/min | shared | %s/shared | held by %s + %s |' % (
               label[drv], label[drv], label[drv], label[a], label[b]),
           '|---|---|---|---|---|---|---|']
    rows = 0
    for p in pts:
        d = summary.get((drv, p))
        if not d or not d['iops'] or not key(p):
            continue
        ca = [(qd(q), summary[(a, q)]['iops']) for q in pts
              if key(q) == key(p) and (a, q) in summary and summary[(a, q)]['iops']]
        cb = [(qd(q), summary[(b, q)]['iops']) for q in pts
              if key(q) == key(p) and (b, q) in summary and summary[(b, q)]['iops']]
        xa, xb = summary.get((a, p)), summary.get((b, p))
        sh = shared_depth(ca, cb, qd(p))
        if not sh or not xa or not xb or not xa['iops'] or not xb['iops']:
            continue
        mn = min(xa['iops'], xb['iops'])
        x, na, nb = sh
        out.append('| %s | %.0f | %.0f | %.2f | %.0f | %.2f | %.1f + %.1f |' % (
            point_label(p), d['iops'], mn, d['iops'] / mn, x, d['iops'] / x if x else 0, na, nb))
        rows += 1
    return out if rows else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('work')
    ap.add_argument('--paths', required=True)
    ap.add_argument('--drv', default='drv')
    ap.add_argument('--vs', default='')
    ap.add_argument('--bound', default='')
    ap.add_argument('--also', default='', help='more ratio columns: A:B,...')
    ap.add_argument('--depth-bound', default='',
                    help='TRANSPORT-CEILING-KEY,DRIVER-CEILING-KEY measured at several depths')
    ap.add_argument('--md')
    a = ap.parse_args()
    paths = [kv.split('=', 1) for kv in a.paths.split(',')]
    label = dict(paths)
    keys = [k for k, _ in paths]
    vs = [k for k in a.vs.split(',') if k]
    bound = [k for k in a.bound.split(',') if k]
    also = [x.split(':') for x in a.also.split(',') if x]
    pts = set()
    for k in keys:
        d = os.path.join(a.work, 'r', k)
        if os.path.isdir(d):
            pts.update(p for p in os.listdir(d) if p != 'idle')
    # Points in a stable order: by rw, then bs, clients, QD.
    def pkey(p):
        m = POINT_RE.match(p)
        if not m:
            return (p,)
        rw, bs, qd, c, r = m.groups()
        return (rw, int(re.sub(r'\D', '', bs) or 0), int(c or 1), int(qd), int(r or 0))
    pts = sorted(pts, key=pkey)

    out = []
    summary = {}
    for p in pts:
        out.append('\n### %s\n' % point_label(p))
        multi = POINT_RE.match(p) and (POINT_RE.match(p).group(4) or '1') != '1'
        out.append('| path | IOPS | spread | p50 us | p99 us | p99.9 us | server CPU us/IO | guest CPU us/IO | runs |'
                   + (' clients max/min |' if multi else ''))
        out.append('|---|---|---|---|---|---|---|---|---|' + ('---|' if multi else ''))
        for k in keys:
            rr = [parse_run(b) for b in runs_of(a.work, k, p)]
            n = len(rr)
            rr = [r for r in rr if r]
            if not n:
                continue
            m = {f: med([r[f] for r in rr]) for f in ('iops', 'p50', 'p99', 'p999', 'srv', 'sys', 'mm')}
            m['srv_max'] = max([r['srv'] for r in rr if r['srv'] is not None], default=None)
            summary[(k, p)] = m
            out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |' % (
                label[k], fmt(m['iops']), spread([r['iops'] for r in rr], m['iops']),
                fmt(m['p50'], 1), fmt(m['p99'], 1), fmt(m['p999'], 1), fmt(m['srv'], 1), fmt(m['sys'], 1),
                len(rr), n) + (' %s |' % fmt(m['mm'], 2) if multi else ''))
    # The host's side (bench/hostcpu.py), where it was read.
    hrows = []
    for p in pts:
        for k in keys:
            hh = [r['host'] for r in (parse_run(b) for b in runs_of(a.work, k, p)) if r and r['host']]
            if not hh:
                continue
            m = {f: med([h[f] for h in hh]) for f in hh[0]}
            hrows.append('| %s | %s | %s | %.2f | %.2f | %.2f | %.1f | %.1f | %d |' % (
                point_label(p), label[k], fmt(summary[(k, p)]['iops']) if (k, p) in summary else '-',
                m['busy'], m['vcpu'], m['emu'], m['vcpu_io'], m['emu_io'], len(hh)))
    if hrows:
        out.append('\n### The host: QEMU\'s threads (bench/hostcpu.py; medians)\n')
        out.append('vCPUs run everything in the guest (clients, kernel, servers, their polling);'
                   ' emulation is QEMU\'s main thread and its I/O workers (the NVMe controller,'
                   ' the image). Cores are host CPU time over wall time.\n')
        out.append('| point | path | IOPS | host cores busy (all) | vCPU cores | emulation cores |'
                   ' vCPU us/IO | emulation us/IO | runs |')
        out.append('|---|---|---|---|---|---|---|---|---|')
        out.extend(hrows)
    # Where nvme-drv's requests spend their time (nvme-drv-ctl stats).
    drows = []
    for p in pts:
        for k in keys:
            dd = [r['dev'] for r in (parse_run(b) for b in runs_of(a.work, k, p)) if r and r['dev']]
            m = POINT_RE.match(p)
            if not dd or not m or (k, p) not in summary:
                continue
            qd = int(m.group(3)) * int(m.group(4) or 1)
            us, n = med([x['us'] for x in dd]), med([x['n'] for x in dd])
            io = summary[(k, p)]['iops']
            lat = qd / io * 1e6 if io else None
            drows.append('| %s | %s | %s | %s | %.1f | %.2f of %d | %s |' % (
                point_label(p), label[k], fmt(io), fmt(lat, 1), us, n, qd,
                '%.0f %%' % (us / lat * 100) if lat else '-'))
    if drows:
        out.append('\n### At the device (nvme-drv-ctl stats: commands, device-us; medians)\n')
        out.append('A request\'s mean latency is its depth over the rate (Little\'s law); a command\'s'
                   ' time at the device runs from the doorbell that sent it to the reap of its completion;'
                   ' the device share assumes one command a request (true of 4 KiB requests).\n')
        out.append('| point | path | IOPS | request mean us | command at the device us | at the device |'
                   ' device share |')
        out.append('|---|---|---|---|---|---|---|')
        out.extend(drows)
    # Ratios of nvme-drv's medians.
    if any(k == a.drv for k, _ in summary):
        hdr = ['point'] + ['%s/%s' % (label[a.drv], label[v]) for v in vs]
        if len(bound) == 2:
            hdr += ['bound (IOPS)', '%s/bound' % label[a.drv]]
        cpu_vs = [v for v in vs if any(kk == v and m['srv'] for (kk, _), m in summary.items())]
        hdr += ['server CPU/IO vs %s' % label[v] for v in cpu_vs]
        hdr += ['%s CPU/IO max/median' % label[a.drv]]
        hdr += ['%s/%s' % (label[x], label[y]) for x, y in also]
        out.append('\n### %s against the others (ratios of medians)\n' % label[a.drv])
        out.append('| ' + ' | '.join(hdr) + ' |')
        out.append('|' + '---|' * len(hdr))
        for p in pts:
            d = summary.get((a.drv, p))
            if not d or not d['iops']:
                continue
            row = [point_label(p)]
            for v in vs:
                o = summary.get((v, p))
                row.append('%.2f' % (d['iops'] / o['iops']) if o and o['iops'] else '-')
            if len(bound) == 2:
                x, y = summary.get((bound[0], p)), summary.get((bound[1], p))
                if x and y and x['iops'] and y['iops']:
                    b = 1 / (1 / x['iops'] + 1 / y['iops']) if point_qd1(p) else min(x['iops'], y['iops'])
                    row += ['%.0f (%s)' % (b, 'serial' if point_qd1(p) else 'min'), '%.2f' % (d['iops'] / b)]
                else:
                    row += ['-', '-']
            for v in cpu_vs:
                o = summary.get((v, p))
                row.append('%.2f' % (d['srv'] / o['srv']) if o and o['srv'] and d['srv'] else '-')
            row.append('%.2f' % (d['srv_max'] / d['srv']) if d['srv'] and d['srv_max'] else '-')
            for x, y in also:
                xx, yy = summary.get((x, p)), summary.get((y, p))
                row.append('%.2f' % (xx['iops'] / yy['iops']) if xx and yy and yy['iops'] else '-')
            out.append('| ' + ' | '.join(row) + ' |')
    dbound = [k for k in a.depth_bound.split(',') if k]
    if len(dbound) == 2:
        out.extend(depth_table(summary, pts, a.drv, dbound[0], dbound[1], label))
    # Idle.
    idle = [(k, [idle_run(b) for b in runs_of(a.work, k, 'idle')]) for k in keys]
    idle = [(k, v) for k, v in idle if v]
    if idle:
        out.append('\n### Idle, clients connected\n')
        out.append('| server | CPU % | wake-ups/s (timeslices) | voluntary switches/s | whole guest busy % | runs |')
        out.append('|---|---|---|---|---|---|')
        for k, v in idle:
            out.append('| %s | %.2f | %.1f | %.1f | %.1f | %d |' % (
                label[k], med([x['cpu'] for x in v]), med([x['wake'] for x in v]),
                med([x['vcs'] for x in v]), med([x['sys'] for x in v]), len(v)))
    text = '\n'.join(out).lstrip('\n') + '\n'
    sys.stdout.write(text)
    if a.md:
        with open(a.md, 'w') as fh:
            fh.write(text)


if __name__ == '__main__':
    main()
