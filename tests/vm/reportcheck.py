#!/usr/bin/env python3
"""reportcheck.py TEXT JSON: the two forms of one nvme-drv report say the same.

TEXT is what nvme-drv --list or nvme-drv-ctl REPORT printed, JSON what the
same with --json printed. The text is read by its documented grammar (a
line per record, two spaces of indent per level, "KIND NAME key=value...",
a value bare or double-quoted with \\" \\\\ \\n \\t \\xHH), the JSON by
json.loads; every record, member and value must match (yes/no are the
booleans, digits the numbers). Exits 0, or 1 saying the first difference.
A loop record's counters (stats) move between the two calls: there both
must be numbers, not the same ones.
"""
import json
import re
import sys

NAME_KEY = {"controller": "bdf", "namespace": "name", "partition": "uuid", "client": "name",
            "loop": "name"}
CHILDREN = {"controller": "namespaces", "namespace": "partitions"}
TOP = {"controller": "controllers", "client": "clients", "loop": "loops"}
MOVING = re.compile(r"^\.loops\[\d+\]\.(?!name$)")


def value(s, i):
    """The value at s[i]: (text, next index)."""
    if s[i] != '"':
        j = s.find(" ", i)
        j = len(s) if j < 0 else j
        return s[i:j], j
    out, i = bytearray(), i + 1
    while s[i] != '"':
        if s[i] == "\\":
            c = s[i + 1]
            if c == "x":
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"n": b"\n", "t": b"\t"}.get(c, c.encode())
            i += 2
        else:
            out += s[i].encode()
            i += 1
    return out.decode("utf-8", "replace"), i + 1


def parse_text(text):
    top, stack = {}, []  # stack: (depth, kind, record)
    for line in text.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        s = line.lstrip(" ")
        kind, _, rest = s.partition(" ")
        name, i = value(rest, 0)
        rec = {NAME_KEY[kind]: name}
        while i < len(rest):
            assert rest[i] == " ", f"no space at {i} in {line!r}"
            m = re.match(r"([a-z-]+)=", rest[i + 1:])
            assert m, f"no key at {i} in {line!r}"
            v, i = value(rest, i + 1 + m.end())
            rec[m.group(1)] = v
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            stack[-1][2].setdefault(CHILDREN[stack[-1][1]], []).append(rec)
        else:
            top.setdefault(TOP[kind], []).append(rec)
        stack.append((depth, kind, rec))
    return top


def same(t, j, where):
    if isinstance(j, dict):
        for k in j:  # a record with no children has no lines for them
            if j[k] == [] and k not in t:
                t[k] = []
        if set(t) != set(j):
            return f"{where}: text keys {sorted(t)} != JSON keys {sorted(j)}"
        for k in j:
            d = same(t[k], j[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(j, list):
        if len(t) != len(j):
            return f"{where}: {len(t)} records in text, {len(j)} in JSON"
        for n, (a, b) in enumerate(zip(t, j)):
            d = same(a, b, f"{where}[{n}]")
            if d:
                return d
        return None
    if MOVING.match(where):
        ok = isinstance(j, int) and not isinstance(j, bool) and t.isdigit()
    elif isinstance(j, bool):
        ok = t == ("yes" if j else "no")
    elif isinstance(j, int):
        ok = t == str(j)
    else:
        ok = t == j
    return None if ok else f"{where}: text {t!r} != JSON {j!r}"


def main():
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    doc = json.load(open(sys.argv[2]))
    t = parse_text(text)
    for k in doc:  # lists JSON gives empty, text has no line for
        t.setdefault(k, [])
    d = same(t, doc, "")
    if d:
        print(d)
        return 1
    n = sum(len(v) for v in doc.values())
    print(f"same: {n} top-level records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
