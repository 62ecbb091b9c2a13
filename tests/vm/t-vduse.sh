#!/usr/bin/env bash
# VDUSE clients (issue: "VDUSE clients"): nvme-drv serves partitions to the
# guest's own kernel as /dev/vdX. One boot, one controller:
#   VD  ns1 64 MiB GPT by sgdisk: one (read-write), two (read-only; an ext4
#       made on the host)   ns2 16 MiB, no table (a dynamic client)
# In the guest: the error without the vduse module; then ext4 on "one"
# (mkfs, files, fsck, remount), fio with crc32c verify, the read-only device
# (getro, reads, a refused write, mount -o ro), a dynamic client through the
# control socket, SIGTERM under fio and a write-then-fsync log, a start that
# fails after a first VDUSE device was made, and a restart on which every
# acknowledged record is found; no kernel warning. On the host afterwards:
# nothing outside partition one and ns2's written MiB changed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork vduse

P2=51200	# partition two's first LBA: 2048 + 24 MiB
mkimg "$work/a.img" 64
sgdisk -Z -n 1:2048:+24M -c 1:one -n 2:$P2:+24M -c 2:two "$work/a.img" >/dev/null
mkdir "$work/fs"
head -c 300000 /dev/urandom > "$work/fs/blob"
seq 50000 > "$work/fs/numbers"
(cd "$work/fs" && md5sum blob numbers) > "$work/host-sums"
mkfs.ext4 -q -F -d "$work/fs" -E offset=$((P2 * 512)),nodiscard "$work/a.img" 24M
mkimg "$work/b.img" 16
cp "$work/a.img" "$work/a.orig"
cp "$work/b.img" "$work/b.orig"

D=$build/src/daemon/nvme-drv
CTL="$build/tools/nvme-drv-ctl --svr /tmp/ctl.sock"
LOGREC="python3 $here/fsynclog.py"
REC_OFF=$((16 << 20))	# the records: past fio's 8 MiB, inside partition one,
REC_SLOTS=1024		# in a ring of 4 MiB
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
ms() { echo \$(( \$(date +%s%N) / 1000000 )); }
# The block device of vdpa device \$1, as virtio_blk named it.
blkof() { for b in /sys/bus/vdpa/devices/\$1/virtio*/block/*; do [ -e "\$b" ] && { echo "\${b##*/}"; return 0; }; done; return 1; }
waitblk() { for i in \$(seq 400); do blkof \$1 && return 0; sleep 0.05; done; return 1; }
# Waits at most \$2 seconds for process \$1 to end; "hung" if it did not.
waitpid() { for i in \$(seq \$((\$2 * 10))); do kill -0 \$1 2>/dev/null || { wait \$1; return \$?; }; sleep 0.1; done; kill -9 \$1; wait \$1; echo hung; return 255; }

step no-module $D --client vduse:vd0 --device partlabel:one
$here/modprobe vduse virtio_vdpa virtio_blk || echo "modprobe failed" >"\$W/modprobe.err"
mkdir -p /mnt/a /mnt/b

t0=\$(ms)
$D -v --client vduse:vd0 --device partlabel:one --client vduse:vd1 --device partlabel:two --readonly \\
	--svr /tmp/ctl.sock 2>"\$W/server1.err" & srv=\$!
A=\$(waitblk vd0); B=\$(waitblk vd1)
echo "\$A \$B \$((\$(ms) - t0))" >"\$W/devs.out"
[ -n "\$A" ] && [ -n "\$B" ] || { kill -TERM \$srv; wait \$srv; exit 0; }

step mkfs mkfs.ext4 -q -F /dev/\$A
step mount mount -t ext4 /dev/\$A /mnt/a
step write-files sh -c 'for i in 1 2 3; do head -c 1048576 /dev/urandom >/mnt/a/f\$i || exit 1; done; seq 100000 >/mnt/a/small && cd /mnt/a && md5sum f1 f2 f3 small >/tmp/sums'
step umount umount /mnt/a
step fsck fsck.ext4 -fn /dev/\$A
step remount mount -t ext4 /dev/\$A /mnt/a
step files-intact sh -c 'cd /mnt/a && md5sum -c /tmp/sums'
umount /mnt/a
t=\$(ms)
step fio fio --name=verify --filename=/dev/\$A --size=8M --bs=4k --iodepth=8 --rw=randwrite \\
	--verify=crc32c --verify_state_save=0 --ioengine=libaio --direct=1
echo \$((\$(ms) - t)) >"\$W/fio-ms.out"

step ro-getro blockdev --getro /dev/\$B
step ro-read dd if=/dev/\$B of=/dev/null bs=1M count=8 iflag=direct
step ro-write dd if=/dev/zero of=/dev/\$B bs=4k count=1 oflag=direct conv=notrunc
step ro-mount mount -t ext4 -o ro /dev/\$B /mnt/b
step ro-files sh -c 'cd /mnt/b && md5sum -c $work/host-sums'
umount /mnt/b

# Dynamic clients, through the control socket.
step dyn-dsmax1 $CTL create 0 device=VD:n2 vduse=vd2 ds-max=1
step dyn-busy $CTL create 0 device=partlabel:one vduse=vd2
step dyn-exists $CTL create 0 device=VD:n2 vduse=vd0
t=\$(ms)
step dyn-create $CTL create 0 device=VD:n2 vduse=vd2 ds-max=5
echo \$((\$(ms) - t)) >"\$W/dyn-create-ms.out"
C=\$(blkof vd2); echo "\$C" >"\$W/dyn-dev.out"
ls /sys/block/\$C/mq >"\$W/dyn-mq.out" 2>&1
step dyn-io sh -c "head -c 1048576 /dev/urandom >/tmp/pat && dd if=/tmp/pat of=/dev/\$C bs=64k oflag=direct status=none && dd if=/dev/\$C of=/tmp/back bs=64k count=16 iflag=direct status=none && cmp /tmp/pat /tmp/back"
step dyn-list $CTL list
step dyn-eperm $CTL destroy vd0
step dyn-enoent $CTL destroy vd9
step dyn-destroy $CTL destroy vd2
{ blkof vd2; ls -d /sys/bus/vdpa/devices/vd2 /dev/vduse/vd2; } >"\$W/dyn-gone.out" 2>/dev/null

# SIGTERM while fio writes with fsync and the log writer runs.
fio --name=load --filename=/dev/\$A --size=8M --bs=4k --iodepth=8 --rw=randwrite --ioengine=libaio \\
	--direct=1 --fsync=1 --time_based --runtime=120 >"\$W/load-fio.out" 2>&1 & fio=\$!
$LOGREC write /dev/\$A $REC_OFF $REC_SLOTS /tmp/acked >"\$W/writer.out" 2>&1 & wr=\$!
sleep 4
t=\$(ms)
kill -TERM \$srv
waitpid \$srv 60 >"\$W/sigterm-hang.out"; echo \$? >"\$W/sigterm.rc"
echo \$((\$(ms) - t)) >"\$W/sigterm-ms.out"
waitpid \$fio 30 >"\$W/fio-hang.out"
waitpid \$wr 30 >"\$W/writer-hang.out"
wc -l </tmp/acked >"\$W/acked.out"

# A static client that fails after a VDUSE one was made: that one must
# come off the bus again.
step static-busy $D --client vduse:vd5 --device partlabel:one --client vduse:vd6 --device VD:n1
ls -d /sys/bus/vdpa/devices/vd5 /dev/vduse/vd5 >"\$W/static-busy-left.out" 2>/dev/null

t0=\$(ms)
$D -v --client vduse:vd0 --device partlabel:one 2>"\$W/server2.err" & srv=\$!
A=\$(waitblk vd0); echo "\$A \$((\$(ms) - t0))" >"\$W/restart.out"
step records $LOGREC check /dev/\$A $REC_OFF $REC_SLOTS /tmp/acked
kill -TERM \$srv
waitpid \$srv 60 >"\$W/sigterm2-hang.out"; echo \$? >"\$W/sigterm2.rc"
dmesg >"\$W/dmesg.out"
GUEST

start=$SECONDS
"$run" --timeout 300 --nvme serial=VD --ns file="$work/a.img" --ns file="$work/b.img" -- \
	bash "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
echo "# vm run: $((SECONDS - start)) s"
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

expect_error no-module "modprobe vduse virtio_vdpa virtio_blk"
[ -e "$work/modprobe.err" ] && fail "tests/vm/modprobe vduse virtio_vdpa virtio_blk failed"
read -r A B attach_ms < "$work/devs.out"
if [ -n "$A" ] && [ -n "$B" ]; then ok "block devices $A (one) and $B (two) appeared, ${attach_ms} ms after start"
else fail "block devices: '$(cat "$work/devs.out")'; server: $(tail -5 "$work/server1.err" | tr '\n' ' ')"; exit 1; fi

for s in mkfs mount write-files umount fsck remount files-intact fio; do expect_ok $s; done
# fsck -n exits 0 only when it found nothing to fix.
grep -q ' files (' "$work/fsck.out" && ok "fsck -fn: clean, $(grep ' files (' "$work/fsck.out")" || fail "fsck output: $(cat "$work/fsck.out")"
echo "# fio verify of 8 MiB: $(cat "$work/fio-ms.out") ms"
grep -q 'err= 0' "$work/fio.out" && ! grep -qi 'verify.*bad\|crc32c.*fail' "$work/fio.out" &&
	ok "fio crc32c verify: no error" || fail "fio: $(grep -i 'err=\|verify' "$work/fio.out" | head -3 | tr '\n' ' ')"

expect_ok ro-getro
[ "$(cat "$work/ro-getro.out")" = 1 ] && ok "read-only device: blockdev --getro is 1" || fail "getro: $(cat "$work/ro-getro.out")"
expect_ok ro-read
if [ "$(rc_of ro-write)" != 0 ] && [ "$(rc_of ro-write)" != missing ]; then ok "read-only device: dd write fails ($(head -1 "$work/ro-write.err"))"
else fail "read-only device: dd write exit $(rc_of ro-write)"; fi
expect_ok ro-mount
expect_ok ro-files

ctl_err() { # STEP ERRNAME
	local rc; rc=$(rc_of "$1")
	if [ "$rc" = 1 ] && grep -q "^nvme-drv-ctl: error: $2: " "$work/$1.err"; then ok "$1: $2 ($(head -1 "$work/$1.err"))"
	else fail "$1: exit $rc, wanted $2: $(cat "$work/$1.err" "$work/$1.out" | head -3 | tr '\n' ' ')"; fi
}
ctl_err dyn-dsmax1 EINVAL
ctl_err dyn-busy EBUSY
ctl_err dyn-exists EEXIST
expect_ok dyn-create
C=$(cat "$work/dyn-dev.out")
[ -n "$C" ] && ok "dynamic client: create answered once $C existed ($(cat "$work/dyn-create-ms.out") ms)" ||
	fail "dynamic client: no block device when create returned"
# ds-max 5 allows 4 queues; virtio_blk takes one per CPU: 2.
[ "$(wc -l < "$work/dyn-mq.out")" = 2 ] && ok "dynamic client with ds-max=5: 2 hardware queues (one per CPU)" ||
	fail "dynamic client queues: $(cat "$work/dyn-mq.out" | tr '\n' ' ')"
expect_ok dyn-io
grep -q 'client vduse:vd2 device=VD:n2 target=VD:n2 type=dynamic transport=vduse read-only=no ds-max=5 connected=yes .*writes=[1-9]' "$work/dyn-list.out" &&
	grep -q 'client vduse:vd0 device=partlabel:one target=VD:n1:1 type=static transport=vduse read-only=no ds-max=2 connected=yes' "$work/dyn-list.out" &&
	grep -q 'client vduse:vd1 device=partlabel:two target=VD:n1:2 type=static transport=vduse read-only=yes' "$work/dyn-list.out" &&
	ok "list shows the static and dynamic VDUSE clients" || fail "list: $(cat "$work/dyn-list.out")"
ctl_err dyn-eperm EPERM
ctl_err dyn-enoent ENOENT
expect_ok dyn-destroy
[ -s "$work/dyn-gone.out" ] && fail "after destroy: still there: $(cat "$work/dyn-gone.out" | tr '\n' ' ')" ||
	ok "destroy answered once the block device, vdpa device and /dev/vduse/vd2 were gone"

sigterm_ms=$(cat "$work/sigterm-ms.out")
if [ -s "$work/sigterm-hang.out" ]; then fail "SIGTERM under load: nvme-drv did not stop within 60 s"
elif [ "$(cat "$work/sigterm.rc")" = 0 ]; then ok "SIGTERM under fio and fsync: nvme-drv exits 0 after $sigterm_ms ms"
else fail "SIGTERM under load: exit $(cat "$work/sigterm.rc")"; fi
grep -q '0000:00:04.0: shut down cleanly' "$work/server1.err" &&
	ok "controller shut down cleanly" || fail "no clean shutdown: $(tail -3 "$work/server1.err" | tr '\n' ' ')"
grep -q 'vduse:vd0: off the vdpa bus' "$work/server1.err" && grep -q 'vduse:vd1: off the vdpa bus' "$work/server1.err" &&
	ok "both VDUSE devices taken off the vdpa bus at SIGTERM" || fail "VDUSE devices not removed at SIGTERM"
[ -s "$work/fio-hang.out" ] && fail "fio hung after the server stopped" || ok "fio ended with the device ($(grep -m1 -o 'err=[ 0-9]*' "$work/load-fio.out" || echo no status))"
if [ -s "$work/writer-hang.out" ]; then fail "the log writer hung after the server stopped"
elif grep -q '^stopped at record [0-9]*: ' "$work/writer.out"; then ok "log writer stopped by the device going away: $(tr '\n' ' ' < "$work/writer.out")"
else fail "log writer: $(cat "$work/writer.out")"; fi
acked=$(cat "$work/acked.out")
[ "${acked:-0}" -ge 5 ] && ok "$acked records acknowledged before SIGTERM" || fail "only ${acked:-0} records acknowledged"
expect_error static-busy "overlaps"
[ -s "$work/static-busy-left.out" ] && fail "failed start left a VDUSE device: $(cat "$work/static-busy-left.out" | tr '\n' ' ')" ||
	ok "failed start took its first VDUSE device off the bus and destroyed it"
read -r A2 restart_ms < "$work/restart.out"
[ -n "$A2" ] && ok "restart: $A2 back after $restart_ms ms" || fail "restart: no block device: $(tail -3 "$work/server2.err" | tr '\n' ' ')"
expect_ok records
echo "# $(tail -1 "$work/records.out")"
[ "$(cat "$work/sigterm2.rc")" = 0 ] && [ ! -s "$work/sigterm2-hang.out" ] && ok "restarted server: SIGTERM exit 0" ||
	fail "restarted server: SIGTERM exit $(cat "$work/sigterm2.rc")"
for l in server1 server2; do
	if grep -qi 'sanitizer\|segfault\|assert\|: error: ' "$work/$l.err"; then
		fail "$l log has errors: $(grep -i 'sanitizer\|segfault\|assert\|: error: ' "$work/$l.err" | head -3 | tr '\n' ' ')"
	else ok "$l log: no errors"; fi
done

# The kernel's side: no warning, oops or hung task from VDUSE, vdpa or virtio.
if grep -q -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more than' "$work/dmesg.out"; then
	fail "kernel log: $(grep -m3 -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more' "$work/dmesg.out" | tr '\n' ' ')"
else ok "kernel log: no warning, oops or hung task"; fi

ic=$here/imgcheck.py
check_img() { # NAME IMG LBS ARGS...
	local name=$1 img=$2 lbs=$3; shift 3
	if out=$(python3 "$ic" "$work/$img.orig" "$work/$img.img" "$lbs" "$@"); then ok "host check $name"
	else fail "host check $name: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
}
check_img "a: only partition one changed (GPT, the read-only partition two and the gaps unchanged)" a 512 \
	--any 2048:49152
check_img "b: only the MiB the dynamic client wrote changed" b 512 --any 0:2048
exit $failed
