#!/usr/bin/env bash
# Clients over vhost-user (issue: "Clients"). One boot, two controllers:
#   NVD-A  ns1 64 MiB GPT: one (by UUID), two, ro (read-only)   ns2 16 MiB whole
#   NVD-B  ns1 16 MiB GPT: bee
# nvme-drv serves four static clients and the control socket; nvme-drv-io
# (our vhost-user front end) and nvme-drv-ctl drive it. Then the host
# checks every image: client patterns where written, zeroes where zeroed,
# every other byte unchanged.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork clients

U1=11111111-0000-4000-8000-000000000001
U2=11111111-0000-4000-8000-000000000002
U3=11111111-0000-4000-8000-000000000003
mkimg "$work/a1.img" 64
sgdisk -Z -n 1:2048:+16M -c 1:one -u 1:$U1 -n 2:0:+16M -c 2:two -u 2:$U2 \
	-n 3:0:+8M -c 3:ro -u 3:$U3 "$work/a1.img" >/dev/null
mkimg "$work/a2.img" 16
mkimg "$work/b1.img" 16
sgdisk -Z -n 1:2048:+8M -c 1:bee "$work/b1.img" >/dev/null
for f in a1 a2 b1; do cp "$work/$f.img" "$work/$f.orig"; done

D=$build/src/daemon/nvme-drv
IO=$build/tools/nvme-drv-io
CTL="$build/tools/nvme-drv-ctl --svr /tmp/ctl.sock"
RAW="python3 $here/ctlraw.py /tmp/ctl.sock"
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
waitsock() { for i in \$(seq 100); do [ -S "\$1" ] && return 0; sleep 0.1; done; return 1; }
$D -v --client /tmp/p1.sock --device $U1 --client /tmp/ns.sock --device NVD-A:n2 \
	--client /tmp/ro.sock --device partlabel:ro --readonly --client /tmp/b.sock --device partlabel:bee \
	--svr /tmp/ctl.sock 2>"\$W/server.err" &
srv=\$!
waitsock /tmp/ctl.sock
step verify-part-uuid $IO --socket /tmp/p1.sock --rw verify --bs 4k --qd 8
step verify-ns-mq $IO --socket /tmp/ns.sock --rw verify --bs 64k --qd 8 --queues 2
step ns-write-zeroes $IO --socket /tmp/ns.sock --rw write-zeroes --offset-sectors 2048 --size 1M
step ns-discard $IO --socket /tmp/ns.sock --rw discard --offset-sectors 8192 --size 1M
step ns-flush $IO --socket /tmp/ns.sock --rw flush
step ns-get-id $IO --socket /tmp/ns.sock --get-id
step create-socket $CTL create 0 device=partlabel:two socket=/tmp/d2.sock
# Two partitions of one disk and a disk of another controller, at once.
$IO --socket /tmp/p1.sock --rw randread --qd 8 --time 3 >"\$W/par-p1.out" 2>&1 & a=\$!
$IO --socket /tmp/d2.sock --rw verify --qd 8 --queues 2 >"\$W/par-d2.out" 2>&1 & b=\$!
$IO --socket /tmp/b.sock --rw verify --qd 8 >"\$W/par-b.out" 2>&1 & c=\$!
wait \$a; echo \$? >"\$W/par-p1.rc"; wait \$b; echo \$? >"\$W/par-d2.rc"; wait \$c; echo \$? >"\$W/par-b.rc"
step list-busy $CTL list
step destroy-socket $CTL destroy /tmp/d2.sock
[ -e /tmp/d2.sock ]; echo \$? >"\$W/d2-gone.rc"
step busy-same $CTL create 0 device=$U1 socket=/tmp/x.sock
step busy-same-canonical $CTL create 0 device=NVD-A:n2 socket=/tmp/x.sock
step busy-overlap $CTL create 0 device=NVD-A:n1 socket=/tmp/x.sock
# nvme-drv's --readonly spelling is accepted in create() too.
step create-readonly $CTL create 0 device=partlabel:two readonly socket=/tmp/r.sock
step readonly-info $IO --socket /tmp/r.sock --info
step destroy-readonly $CTL destroy /tmp/r.sock
# nvme-drv-ctl's own errors: one "error:" line, exit 1.
step ctl-usage $CTL frobnicate
step ctl-no-svr $build/tools/nvme-drv-ctl list
step ctl-vhost-socket $build/tools/nvme-drv-ctl --svr /tmp/ns.sock list
step nodev $CTL create 0 device=NOPE:n1 socket=/tmp/x.sock
step einval-name $CTL create 0 device=NVD-A:n0 socket=/tmp/x.sock
# Past nvme-drv-ctl's own checks: the server must answer these itself.
step einval-type $RAW create 1 device=NVD-A:n2
step einval-nodev $RAW create 0 ds-max=2
step einval-dsmax $RAW create 0 device=partlabel:two ds-max=0
step einval-word $RAW create 0 device=partlabel:two frobnicate
step einval-cmd $RAW explode
step eperm-static $CTL destroy /tmp/p1.sock
step enoent-destroy $CTL destroy /tmp/nothing.sock
step create-fd $CTL create 0 device=partlabel:two read-only -- $IO --fd 3 --rw read --count 100
step list-after $CTL list
step ro-write $IO --socket /tmp/ro.sock --rw write --count 1
step ro-discard $IO --socket /tmp/ro.sock --rw discard --size 4096
step ro-write-zeroes $IO --socket /tmp/ro.sock --rw write-zeroes --size 4096
step ro-read $IO --socket /tmp/ro.sock --rw read --count 64 --qd 4
step ro-info $IO --socket /tmp/ro.sock --info
# A front end that dies mid-I/O; the next one must be served.
$IO --socket /tmp/p1.sock --rw randread --qd 32 --time 20 >/dev/null 2>&1 & k=\$!
sleep 1; kill -9 \$k; wait \$k
step reconnect $IO --socket /tmp/p1.sock --rw verify --bs 16k --qd 4 --seed 7
kill -0 \$srv; echo \$? >"\$W/alive.rc"
kill -TERM \$srv; wait \$srv; echo \$? >"\$W/sigterm.rc"
ls /tmp/*.sock >"\$W/sockets-left.out" 2>/dev/null
# SIGHUP (the terminal closed), SIGQUIT and SIGINT stop as cleanly as
# SIGTERM, and the next start takes the same names; SIGPIPE is ignored.
for sig in HUP QUIT INT; do
	$D -v --client /tmp/p1.sock --device $U1 --client /tmp/ns.sock --device NVD-A:n2 --read-only \
		--svr /tmp/ctl.sock 2>"\$W/server-\$sig.err" &
	srv=\$!
	waitsock /tmp/ctl.sock && waitsock /tmp/ns.sock
	kill -PIPE \$srv; sleep 0.5
	step \$sig-after-sigpipe $IO --socket /tmp/p1.sock --rw read --count 16
	step \$sig-read-only-info $IO --socket /tmp/ns.sock --info
	kill -\$sig \$srv; wait \$srv; echo \$? >"\$W/\$sig.rc"
	ls /tmp/*.sock >"\$W/\$sig-left.out" 2>/dev/null
done
step static-nodev $D --client /tmp/x.sock --device NOPE:n1
step static-busy $D --client /tmp/x.sock --device $U1 --client /tmp/y.sock --device NVD-A:n1
step static-no-client $D --device NVD-A:n2
step static-no-device $D --client /tmp/x.sock
step static-dsmax $D --client /tmp/x.sock --device NVD-A:n2 --ds-max 300
GUEST

"$run" --timeout 300 --nvme serial=NVD-A --ns file="$work/a1.img" --ns file="$work/a2.img" \
	--nvme serial=NVD-B --ns file="$work/b1.img" -- sh "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

for s in verify-part-uuid verify-ns-mq ns-write-zeroes ns-discard ns-flush ns-get-id create-socket \
	 list-busy destroy-socket create-fd list-after ro-read ro-info reconnect; do
	expect_ok $s
done
grep -q 'verify: OK' "$work/verify-part-uuid.out" && ok "verify over the whole partition by UUID" || fail "no verify OK for p1"
grep -q '^id: "NVD-A:n2"' "$work/ns-get-id.out" && ok "GET_ID gives the device name" || fail "GET_ID: $(cat "$work/ns-get-id.out")"
for p in p1 d2 b; do
	if [ "$(cat "$work/par-$p.rc")" = 0 ]; then ok "concurrent client $p"; else fail "concurrent client $p: $(tail -3 "$work/par-$p.out" | tr '\n' ' ')"; fi
done
grep -q 'client /tmp/d2.sock device=partlabel:two target=NVD-A:n1:2 type=dynamic' "$work/list-busy.out" &&
	ok "list shows the dynamic client" || fail "list: $(cat "$work/list-busy.out")"
grep -q 'client /tmp/p1.sock device=.* type=static transport=socket read-only=no ds-max=2 .*reads=[1-9]' "$work/list-busy.out" &&
	ok "list shows the static client and its counters" || fail "list: $(cat "$work/list-busy.out")"
[ "$(cat "$work/d2-gone.rc")" = 1 ] && ok "destroy removed the socket" || fail "socket /tmp/d2.sock still there"
grep -q 'd2.sock\|fd-client' "$work/list-after.out" && fail "list-after still shows ended clients: $(cat "$work/list-after.out")" || ok "ended clients are gone from list"

ctl_err() { # STEP ERRNAME
	local rc; rc=$(rc_of "$1")
	if [ "$rc" = 1 ] && grep -q "^nvme-drv-ctl: error: $2: " "$work/$1.err"; then ok "$1: $2 ($(head -1 "$work/$1.err"))"
	else fail "$1: exit $rc, wanted $2: $(cat "$work/$1.err" "$work/$1.out" | head -3 | tr '\n' ' ')"; fi
}
ctl_err busy-same EBUSY
ctl_err busy-same-canonical EBUSY
ctl_err busy-overlap EBUSY
# Each EBUSY says what it is about once: "SN1:n2 (SN1:n2) overlaps SN1:n2" was the old text.
grep -qF "nvme-drv-ctl: error: EBUSY: $U1 (NVD-A:n1:1) is claimed by client /tmp/p1.sock" "$work/busy-same.err" &&
	ok "EBUSY for the very same partition: 'is claimed', with its canonical name" ||
	fail "busy-same: $(cat "$work/busy-same.err")"
grep -qF "nvme-drv-ctl: error: EBUSY: NVD-A:n2 is claimed by client /tmp/ns.sock" "$work/busy-same-canonical.err" &&
	ok "EBUSY by the canonical name: no name repeated" ||
	fail "busy-same-canonical: $(cat "$work/busy-same-canonical.err")"
grep -qE "nvme-drv-ctl: error: EBUSY: NVD-A:n1 overlaps NVD-A:n1:[0-9], claimed by client /tmp/" "$work/busy-overlap.err" &&
	ok "EBUSY for a disk over a claimed partition names both" ||
	fail "busy-overlap: $(cat "$work/busy-overlap.err")"
expect_ok create-readonly
grep -q 'ro=yes' "$work/readonly-info.out" && ok "create ... readonly: the client is read-only" ||
	fail "readonly-info: $(cat "$work/readonly-info.out" "$work/readonly-info.err")"
expect_ok destroy-readonly
expect_error ctl-usage "unknown command 'frobnicate'"
expect_error ctl-no-svr "--svr PATH is required"
expect_error ctl-vhost-socket "/tmp/ns.sock is not nvme-drv's control socket"
grep -q 'Protocol wrong type' "$work/ctl-vhost-socket.err" && fail "ctl-vhost-socket still says 'Protocol wrong type'" || true
ctl_err nodev ENODEV
ctl_err einval-name EINVAL
raw_err() { # STEP ERRNAME
	if [ "$(rc_of "$1")" = 1 ] && grep -q "^error $2 " "$work/$1.out"; then ok "$1: server answers $2 ($(tail -1 "$work/$1.out"))"
	else fail "$1: exit $(rc_of "$1"), wanted $2: $(cat "$work/$1.out" "$work/$1.err" | head -3 | tr '\n' ' ')"; fi
}
raw_err einval-type EINVAL
raw_err einval-nodev EINVAL
raw_err einval-dsmax EINVAL
raw_err einval-word EINVAL
raw_err einval-cmd EINVAL
ctl_err eperm-static EPERM
ctl_err enoent-destroy ENOENT

for s in ro-write ro-discard ro-write-zeroes; do
	if [ "$(rc_of $s)" = 1 ] && grep -q IOERR "$work/$s.out" "$work/$s.err"; then ok "read-only client: $s fails with IOERR"
	else fail "read-only client: $s: exit $(rc_of $s): $(cat "$work/$s.out" "$work/$s.err" | tail -3 | tr '\n' ' ')"; fi
done
if grep -q 'refuses write-only' "$work/server.err"; then fail "the IOMMU refused a device-write-only mapping for the read-only client"
else ok "read-only client's memory mapped for device writes only"; fi
grep -q 'ro=yes' "$work/ro-info.out" && ok "read-only client sees VIRTIO_BLK_F_RO" || fail "ro-info: $(cat "$work/ro-info.out")"

[ "$(cat "$work/alive.rc")" = 0 ] && ok "server alive after a front end died mid-I/O" || fail "server died"
[ "$(cat "$work/sigterm.rc")" = 0 ] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $(cat "$work/sigterm.rc")"
[ -s "$work/sockets-left.out" ] && fail "sockets left after exit: $(cat "$work/sockets-left.out")" || ok "client and control sockets removed at exit"
grep -q 'shut down cleanly' "$work/server.err" && ok "controllers shut down cleanly" || fail "no clean shutdown in the server log"
grep -qi 'sanitizer\|segfault\|assert' "$work/server.err" && fail "server log shows a crash" || true
for sig in HUP QUIT INT; do
	expect_ok $sig-after-sigpipe
	grep -q 'ro=yes' "$work/$sig-read-only-info.out" && ok "--read-only: the static client is read-only" ||
		fail "$sig-read-only-info: $(cat "$work/$sig-read-only-info.out")"
	[ "$(cat "$work/$sig.rc")" = 0 ] && ok "SIG$sig: exit 0" || fail "SIG$sig: exit $(cat "$work/$sig.rc")"
	[ -s "$work/$sig-left.out" ] && fail "SIG$sig: sockets left: $(cat "$work/$sig-left.out")" ||
		ok "SIG$sig: client and control sockets removed"
	grep -q 'shut down cleanly' "$work/server-$sig.err" && ok "SIG$sig: controllers shut down cleanly" ||
		fail "SIG$sig: no clean shutdown in the server log"
done

expect_error static-nodev "NOPE:n1"
expect_error static-busy "overlaps"
expect_error static-no-client "--client"
expect_error static-no-device "no --device"
expect_error static-dsmax "300"

ic=$here/imgcheck.py
check_img() { # NAME IMG LBS ARGS...
	local name=$1 img=$2 lbs=$3; shift 3
	if out=$(python3 "$ic" "$work/$img.orig" "$work/$img.img" "$lbs" "$@"); then ok "host check $name"
	else fail "host check $name: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
}
# p1 was last written by the reconnect verify, p2 by the dynamic client;
# ro and everything outside the partitions must be as before.
check_img "a1: one and two hold the clients' pattern, ro and the rest unchanged" a1 512 \
	--rel-pattern 2048:32768 --rel-pattern 34816:32768
# Discarded blocks read back as whatever the emulated drive keeps (QEMU
# without discard=unmap keeps the data): only "nothing else changed" holds.
check_img "a2: pattern, zeroed and discarded ranges as written" a2 512 \
	--zero 2048:2048 --any 8192:2048 --rel-pattern 0:32768
check_img "b1: bee holds the pattern, the rest unchanged" b1 512 --rel-pattern 2048:16384
exit $failed
