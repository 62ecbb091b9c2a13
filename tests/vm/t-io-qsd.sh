#!/usr/bin/env bash
# nvme-drv-io, the vhost-user front-end, against qemu-storage-daemon's
# vhost-user-blk export: a known-good back-end, so that the client is proven
# before it judges nvme-drv. Runs on the host (no VM). One 32 MiB image of
# random bytes, exported twice (writable with 2 queues, and read-only):
#   sectors [2048, 34816)   verify, seed 5, 64k, qd 16 over 2 queues
#   sectors [40960, 49152)  verify, seed 6, 4k, qd 16 over 2 queues, indirect
#   sectors [49152, 51200)  write-zeroes        [51200, 53248)  discard (unmap)
#   sectors [57344, 57856)  verify, seed 8, through an inherited --fd
# plus randread, flush, get-id, --info, the read-only export, I/O past the
# end, bad options, and the daemon dying mid-run. On the host afterwards:
# the pattern is where it was written, zeroes where zeroed, every other byte
# unchanged.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork io-qsd

QSD=${QSD:-/usr/bin/qemu-storage-daemon}
IO=$build/tools/nvme-drv-io
if [ ! -x "$QSD" ]; then skip "t-io-qsd: $QSD is not installed"; exit 0; fi
if [ ! -x "$IO" ]; then fail "t-io-qsd: $IO is not built"; exit 1; fi

W=$work
eval "$guest_steps_prelude"
mkimg "$work/disk.img" 32
cp "$work/disk.img" "$work/disk.orig"
sock=$work/rw.sock rosock=$work/ro.sock
"$QSD" --blockdev "driver=file,node-name=f,filename=$work/disk.img,discard=unmap" \
	--export "type=vhost-user-blk,id=e0,node-name=f,addr.type=unix,addr.path=$sock,writable=on,num-queues=2" \
	--export "type=vhost-user-blk,id=e1,node-name=f,addr.type=unix,addr.path=$rosock,writable=off" \
	> "$work/qsd.log" 2>&1 &
qsd=$!
trap 'kill $qsd 2>/dev/null; wait $qsd 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -S "$sock" ] && [ -S "$rosock" ] && break; sleep 0.1; done
if [ ! -S "$sock" ]; then fail "qsd start: no socket: $(head -c 300 "$work/qsd.log")"; exit 1; fi

S=(--socket "$sock")
step info "$IO" "${S[@]}" --info
step verify-64k-2q "$IO" "${S[@]}" --rw verify --bs 64k --qd 16 --queues 2 --seed 5 \
	--offset-sectors 2048 --size 16M
step verify-4k-indirect "$IO" "${S[@]}" --rw verify --bs 4k --qd 16 --queues 2 --seed 6 \
	--indirect --offset-sectors 40960 --size 4M
step randread "$IO" "${S[@]}" --rw randread --qd 16 --queues 2 --time 2
step write-zeroes "$IO" "${S[@]}" --rw write-zeroes --offset-sectors 49152 --size 1M
step discard "$IO" "${S[@]}" --rw discard --offset-sectors 51200 --size 1M
step flush "$IO" "${S[@]}" --rw flush
step get-id "$IO" "${S[@]}" --get-id
# A connected socket handed down as fd 3, as a VMM's manager would.
step verify-fd python3 -c '
import socket, subprocess, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
sys.exit(subprocess.call([sys.argv[2], "--fd", str(s.fileno()), "--rw", "verify", "--count", "64",
                          "--seed", "8", "--offset-sectors", "57344"], pass_fds=[s.fileno()]))
' "$sock" "$IO"
step ro-info "$IO" --socket "$rosock" --info
step ro-write "$IO" --socket "$rosock" --rw write --count 1
step past-end "$IO" "${S[@]}" --rw read --offset-sectors 65536 --size 4k --count 1
step bad-queues "$IO" "${S[@]}" --queues 3 --count 1
step bad-rw "$IO" "${S[@]}" --rw sideways
step bad-both "$IO" "${S[@]}" --fd 0
step bad-socket "$IO" --socket "$work/nosuch.sock" --info

expect_ok info
grep -q '^config: capacity=65536 blk_size=512 num_queues=2 ro=no ' "$work/info.out" &&
	ok "info: 65536 sectors, 2 queues, writable" || fail "info: $(head -1 "$work/info.out")"
grep -q '^features: .* indirect=yes event_idx=yes ' "$work/info.out" &&
	ok "info: INDIRECT_DESC and EVENT_IDX negotiated" || fail "info: $(tail -1 "$work/info.out")"
for s in verify-64k-2q verify-4k-indirect verify-fd; do
	expect_ok $s
	grep -q '^verify: OK' "$work/$s.out" && ok "$s: verify OK" || fail "$s: no 'verify: OK' line"
done
grep -q 'queues=2 .* segs=16x4096$' "$work/verify-64k-2q.out" && ok "64k I/O in 16 page buffers over 2 queues" ||
	fail "verify-64k-2q: $(grep rw= "$work/verify-64k-2q.out")"
grep -q ' indirect$' "$work/verify-4k-indirect.out" && ok "--indirect used indirect tables" ||
	fail "verify-4k-indirect: $(grep rw= "$work/verify-4k-indirect.out")"
expect_ok randread
grep -Eq '^randread: ios=[1-9][0-9]* time=.* lat_us: min=.* p99.9=' "$work/randread.out" &&
	ok "randread reports iops and latency percentiles" || fail "randread: $(cat "$work/randread.out")"
expect_ok write-zeroes
expect_ok discard
expect_ok flush
grep -qx 'flush: OK' "$work/flush.out" || fail "flush: no 'flush: OK'"
expect_ok get-id
grep -qx 'id: "vhost_user_blk"' "$work/get-id.out" && ok "get-id: qsd's ID" || fail "get-id: $(cat "$work/get-id.out")"
expect_ok ro-info
grep -q ' ro=yes ' "$work/ro-info.out" && ok "read-only export shows ro=yes" || fail "ro-info: $(cat "$work/ro-info.out")"
if [ "$(rc_of ro-write)" = 1 ] && grep -q 'write of sector 0 failed: virtio status IOERR' "$work/ro-write.err"; then
	ok "write to the read-only export: IOERR, exit 1"
else fail "ro-write: exit $(rc_of ro-write): $(cat "$work/ro-write.err")"; fi
if [ "$(rc_of past-end)" = 1 ] && grep -q 'read of sector 65536 failed: virtio status IOERR' "$work/past-end.err"; then
	ok "read past the end: IOERR, exit 1"
else fail "past-end: exit $(rc_of past-end): $(cat "$work/past-end.err")"; fi
expect_error bad-queues "the device has 2"
expect_error bad-rw "sideways"
expect_error bad-both "exactly one of --socket and --fd"
expect_error bad-socket "nosuch.sock"

# The daemon dies under load: the client must notice, not hang.
"$IO" "${S[@]}" --rw randread --qd 8 --time 30 > "$work/dies.out" 2> "$work/dies.err" & io=$!
sleep 1
kill $qsd; wait $qsd 2>/dev/null
start=$SECONDS
wait $io; rc=$?
if [ $rc = 1 ] && [ $((SECONDS - start)) -lt 10 ] && grep -q 'back-end closed the connection' "$work/dies.err"; then
	ok "qsd killed mid-run: the client reports the hang-up and exits 1"
else fail "qsd killed mid-run: exit $rc after $((SECONDS - start)) s: $(cat "$work/dies.err")"; fi
if grep -q 'vu_panic' "$work/qsd.log"; then fail "qsd complained: $(grep vu_panic "$work/qsd.log" | head -3)"
else ok "qsd saw no protocol error"; fi

# Host side: the pattern (nvme-drv-io --help) where written, zeroes where
# zeroed, the random bytes everywhere else.
if out=$(python3 - "$work/disk.orig" "$work/disk.img" 5:2048:32768 6:40960:8192 8:57344:512 \
	0:49152:2048 0:51200:2048 <<'PY'
import struct, sys
M, G = (1 << 64) - 1, 0x9e3779b97f4a7c15

def pattern(s, seed):
    x, w = (seed ^ (s * G)) & M, [s]
    for _ in range(63):
        x = (x + G) & M
        z = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
        w.append(z ^ (z >> 31))
    return struct.pack("<64Q", *w)

orig, img = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
want = {}                        # sector -> seed, or "zero"
for r in sys.argv[3:]:
    kind, first, n = r.split(":")
    for s in range(int(first), int(first) + int(n)):
        want[s] = "zero" if kind == "0" else int(kind)
bad = 0
for s in range(len(img) // 512):
    got = img[s * 512:(s + 1) * 512]
    w = want.get(s)
    exp = orig[s * 512:(s + 1) * 512] if w is None else bytes(512) if w == "zero" else pattern(s, w)
    if got != exp:
        bad += 1
        if bad <= 5:
            print(f"sector {s}: expected {'unchanged' if w is None else w}")
print(f"{bad} bad sectors" if bad else "ok")
sys.exit(1 if bad or len(img) != len(orig) else 0)
PY
); then ok "host check: pattern, zeroes and untouched bytes where they belong"
else fail "host check: $(echo "$out" | head -6 | tr '\n' ' ')"; fi
exit $failed
