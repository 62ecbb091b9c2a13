#!/usr/bin/env bash
# Serving other machines (issue 12, "Beyond one machine"): a partition
# nvme-drv serves through VDUSE is a kernel block device, which the kernel's
# own NVMe-over-Fabrics target (nvmet, nvmet-tcp, configured through configfs)
# exports; the kernel's NVMe/TCP initiator (nvme-cli's `nvme connect -t tcp`)
# uses it. All traffic stays on the guest's loopback interface (127.0.0.1;
# the VM has no network device at all). One boot, one controller:
#   FAB ns1 64 MiB GPT: rw (a read-write VDUSE client), ro (a read-only one)
# In the guest: export rw as namespace 1 of a subsystem on 127.0.0.1:4420,
# open to one host NQN only (another is refused);
# the read-only client's block device cannot be exported (6.12's nvmet opens
# every namespace read-write, and the kernel refuses that on a read-only
# disk, also after `blockdev --setrw`, which cannot clear virtio_blk's RO);
# discover, connect, fio with crc32c verify on the remote namespace, a
# pattern written through the fabric read back from the VDUSE device itself,
# disconnect, unexport, SIGTERM. On the host: only what the fabric client
# wrote changed; the read-only partition is unchanged.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork fabric

if ! command -v nvme >/dev/null; then
	skip "fabric: no nvme-cli on the host (scripts/install-deps test installs it)"
	exit 0
fi

RO=51200	# partition ro's first LBA: 2048 + 24 MiB
mkimg "$work/a.img" 64
sgdisk -Z -n 1:2048:+24M -c 1:rw -n 2:$RO:+24M -c 2:ro "$work/a.img" >/dev/null
cp "$work/a.img" "$work/a.orig"
ro_md5=$(dd if="$work/a.img" bs=512 skip=$RO count=$((24 << 11)) status=none | md5sum | cut -d' ' -f1)
head -c $((1 << 20)) /dev/urandom > "$work/pat"
pat_md5=$(md5sum < "$work/pat" | cut -d' ' -f1)
PAT_OFF=20	# MiB into partition rw, past fio's 16 MiB

D=$build/src/daemon/nvme-drv
NQN=nqn.2026-11.io.nvme-drv.test:fab
HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000fa
OTHERNQN=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000fb
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
blkof() { for b in /sys/bus/vdpa/devices/\$1/virtio*/block/*; do [ -e "\$b" ] && { echo "\${b##*/}"; return 0; }; done; return 1; }
waitblk() { for i in \$(seq 400); do blkof \$1 && return 0; sleep 0.05; done; return 1; }
# The initiator's block device of namespace \$1 of our subsystem.
fabdev() {
	for b in /sys/block/nvme*n*; do
		n=\${b##*/}
		case \$n in *c*) continue ;; esac
		[ "\$(cat \$b/device/subsysnqn 2>/dev/null)" = $NQN ] && [ "\$(cat \$b/nsid)" = \$1 ] && { echo \$n; return 0; }
	done
	return 1
}
waitfab() { for i in \$(seq 200); do fabdev \$1 && return 0; sleep 0.05; done; return 1; }
C=/sys/kernel/config/nvmet
S=\$C/subsystems/$NQN
P=\$C/ports/1

$here/modprobe vduse virtio_vdpa virtio_blk configfs nvmet nvmet-tcp nvme-tcp >"\$W/modprobe.out" 2>&1 ||
	{ echo "modprobe failed" >"\$W/fatal.out"; exit 0; }
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
ip link set lo up
ip -o addr show >"\$W/addrs.out"

$D -v --client vduse:fab0 --device partlabel:rw --client vduse:fab1 --device partlabel:ro --readonly \\
	2>"\$W/server.err" & srv=\$!
A=\$(waitblk fab0); B=\$(waitblk fab1)
echo "\$A \$B" >"\$W/devs.out"
[ -n "\$A" ] && [ -n "\$B" ] || { kill -TERM \$srv; wait \$srv; exit 0; }

# Export: a subsystem with namespace 1, a TCP port on 127.0.0.1, the link.
export_fab() (
	set -e
	mkdir \$S \$C/hosts/$HOSTNQN
	ln -s \$C/hosts/$HOSTNQN \$S/allowed_hosts/
	mkdir \$S/namespaces/1
	echo /dev/\$A >\$S/namespaces/1/device_path
	echo 1 >\$S/namespaces/1/enable
	mkdir \$P
	echo tcp >\$P/addr_trtype
	echo ipv4 >\$P/addr_adrfam
	echo 127.0.0.1 >\$P/addr_traddr
	echo 4420 >\$P/addr_trsvcid
	ln -s \$S \$P/subsystems/$NQN
)
step export export_fab
# The read-only client's disk as namespace 2: nvmet must refuse it.
mkdir \$S/namespaces/2
echo /dev/\$B >\$S/namespaces/2/device_path
step ro-enable sh -c "echo 1 >\$S/namespaces/2/enable"
step ro-setrw blockdev --setrw /dev/\$B
step ro-getro-after-setrw blockdev --getro /dev/\$B
step ro-enable-after-setrw sh -c "echo 1 >\$S/namespaces/2/enable"
cat \$S/namespaces/2/enable >"\$W/ro-enabled.out"
step discover nvme discover -t tcp -a 127.0.0.1 -s 4420 --hostnqn=$HOSTNQN
step other-host nvme connect -t tcp -a 127.0.0.1 -s 4420 -n $NQN --hostnqn=$OTHERNQN
step connect nvme connect -t tcp -a 127.0.0.1 -s 4420 -n $NQN --hostnqn=$HOSTNQN
N1=\$(waitfab 1); N2=\$(fabdev 2)
echo "\$N1 \$N2" >"\$W/fabdevs.out"
ls /sys/block >"\$W/blocks.out"
ss -tan >"\$W/ss.out" 2>&1
if [ -n "\$N1" ]; then
	step fio fio --name=fabric --filename=/dev/\$N1 --size=16M --bs=4k --iodepth=8 --rw=randwrite \\
		--verify=crc32c --verify_state_save=0 --ioengine=libaio --direct=1
	step pat-write dd if=$work/pat of=/dev/\$N1 bs=64k seek=$((PAT_OFF * 16)) oflag=direct status=none
	step pat-local sh -c "dd if=/dev/\$A bs=64k skip=$((PAT_OFF * 16)) count=16 iflag=direct status=none | md5sum"
fi
step ro-local-read sh -c "dd if=/dev/\$B bs=1M iflag=direct status=none | md5sum"
step disconnect nvme disconnect -n $NQN
ls /sys/block | grep '^nvme' >"\$W/left-blk.out"
unexport_fab() (
	set -e
	rm \$P/subsystems/$NQN
	rmdir \$P
	echo 0 >\$S/namespaces/1/enable
	rmdir \$S/namespaces/1 \$S/namespaces/2
	rm \$S/allowed_hosts/$HOSTNQN
	rmdir \$S \$C/hosts/$HOSTNQN
)
step unexport unexport_fab
ls \$C/subsystems \$C/ports \$C/hosts >"\$W/left-cfg.out" 2>&1
kill -TERM \$srv; wait \$srv; echo \$? >"\$W/sigterm.rc"
dmesg >"\$W/dmesg.out"
exit 0
GUEST

start=$SECONDS
"$run" --timeout 240 --nvme serial=FAB --ns file="$work/a.img" -- bash "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
echo "# vm run: $((SECONDS - start)) s"
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }
[ -e "$work/fatal.out" ] && { fail "guest: $(cat "$work/fatal.out"): $(tail -3 "$work/modprobe.out" | tr '\n' ' ')"; exit 1; }
# The guest has loopback only: nothing can leave it.
if grep -v ' lo ' "$work/addrs.out" | grep -q inet; then fail "guest has an interface other than lo: $(cat "$work/addrs.out")"
else ok "guest network: loopback only ($(grep -o 'inet [0-9./]*' "$work/addrs.out" | head -1))"; fi

read -r A B < "$work/devs.out"
if [ -n "$A" ] && [ -n "$B" ]; then ok "VDUSE block devices $A (rw) and $B (ro, read-only client)"
else fail "VDUSE block devices: '$(cat "$work/devs.out")': $(tail -3 "$work/server.err" | tr '\n' ' ')"; exit 1; fi
expect_ok export
expect_ok discover
grep -q "subnqn: *$NQN" "$work/discover.out" && grep -q 'traddr: *127.0.0.1' "$work/discover.out" &&
	ok "discovery on 127.0.0.1:4420 lists $NQN" || fail "discover: $(head -c 400 "$work/discover.out")"
if [ "$(rc_of other-host)" != 0 ] && [ "$(rc_of other-host)" != missing ] &&
	grep -q "connect by host $OTHERNQN for subsystem $NQN not allowed" "$work/dmesg.out"; then
	ok "a host not in allowed_hosts cannot connect ($(head -1 "$work/other-host.err"))"
else fail "a host not in allowed_hosts: nvme connect exit $(rc_of other-host), kernel: $(grep -m1 'not allowed' "$work/dmesg.out")"; fi
expect_ok connect
read -r N1 N2 < "$work/fabdevs.out"
[ -n "$N1" ] && ok "NVMe/TCP namespace 1 on the initiator: $N1" ||
	fail "no NVMe/TCP namespace after connect: $(grep nvme "$work/blocks.out" | tr '\n' ' ')"
# Every TCP socket in the guest, listening or connected, has 127.0.0.1 at both ends.
if grep -q 'LISTEN.*127.0.0.1:4420' "$work/ss.out" &&
	awk 'NR > 1 && $1 != "LISTEN" && !($4 ~ /^127\.0\.0\.1:/ && $5 ~ /^127\.0\.0\.1:/) {bad = 1} END {exit bad}' "$work/ss.out"; then
	ok "TCP: the target listens on 127.0.0.1:4420, every connection is 127.0.0.1 to 127.0.0.1 ($(grep -c ESTAB "$work/ss.out") established)"
else fail "TCP sockets: $(head -8 "$work/ss.out" | tr '\n' ' ')"; fi

if [ -n "$N1" ]; then
	expect_ok fio
	grep -q 'err= 0' "$work/fio.out" && ! grep -qi 'verify.*bad\|crc32c.*fail' "$work/fio.out" &&
		ok "fio crc32c verify through NVMe/TCP: no error" ||
		fail "fio: $(grep -i 'err=\|verify' "$work/fio.out" | head -3 | tr '\n' ' ')"
	expect_ok pat-write
	[ "$(cut -d' ' -f1 "$work/pat-local.out")" = "$pat_md5" ] &&
		ok "1 MiB written through the fabric reads back from the VDUSE device itself" ||
		fail "pattern through the fabric: local read $(cat "$work/pat-local.out"), wanted $pat_md5"
fi
# The read-only client: 6.12's nvmet opens a namespace's device read-write
# (nvmet_bdev_ns_enable), which the kernel refuses on a read-only disk.
ro_refused() { # STEP
	if [ "$(rc_of "$1")" = 1 ] && [ -s "$work/$1.err" ]; then ok "$1: nvmet refuses the read-only client's disk ($(head -1 "$work/$1.err"))"
	else fail "$1: exit $(rc_of "$1"): $(cat "$work/$1.err")"; fi
}
ro_refused ro-enable
expect_ok ro-setrw
[ "$(cat "$work/ro-getro-after-setrw.out")" = 1 ] && ok "blockdev --setrw cannot clear virtio_blk's read-only flag" ||
	fail "after blockdev --setrw, getro is '$(cat "$work/ro-getro-after-setrw.out")'"
ro_refused ro-enable-after-setrw
[ "$(cat "$work/ro-enabled.out")" = 0 ] && ok "namespace 2 stays disabled" || fail "namespace 2 enable reads $(cat "$work/ro-enabled.out")"
[ -z "$N2" ] && ok "the initiator sees no namespace 2" || fail "the initiator sees namespace 2 as $N2"
grep -q "failed to open block device /dev/$B: (-13)" "$work/dmesg.out" &&
	ok "kernel log: nvmet: failed to open block device /dev/$B: (-13)" ||
	fail "kernel log has no nvmet open failure for /dev/$B"
[ "$(cut -d' ' -f1 "$work/ro-local-read.out")" = "$ro_md5" ] && ok "read-only partition still reads its bytes locally" ||
	fail "read-only partition: $(cat "$work/ro-local-read.out" "$work/ro-local-read.err" | head -2 | tr '\n' ' ')"
expect_ok disconnect
[ -s "$work/left-blk.out" ] && fail "NVMe block devices left after disconnect: $(cat "$work/left-blk.out" | tr '\n' ' ')" ||
	ok "disconnect removed the initiator's namespaces"
expect_ok unexport
[ "$(grep -v ':$' "$work/left-cfg.out" | grep -c .)" = 0 ] && ok "unexport left no subsystem, port or host in configfs" ||
	fail "configfs after unexport: $(cat "$work/left-cfg.out" | tr '\n' ' ')"
[ "$(cat "$work/sigterm.rc")" = 0 ] && ok "nvme-drv: SIGTERM exit 0 after the export is gone" ||
	fail "nvme-drv: SIGTERM exit $(cat "$work/sigterm.rc")"
grep -qi 'sanitizer\|segfault\|assert\|: error: ' "$work/server.err" &&
	fail "server log: $(grep -i 'sanitizer\|segfault\|assert\|: error: ' "$work/server.err" | head -3 | tr '\n' ' ')" ||
	ok "server log: no errors"
if grep -q -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more than' "$work/dmesg.out"; then
	fail "kernel log: $(grep -m3 -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more' "$work/dmesg.out" | tr '\n' ' ')"
else ok "kernel log: no warning, oops or hung task"; fi

# Host side: partition rw changed only where fio and the pattern wrote,
# partition ro and everything else (GPT, gaps) not at all.
if out=$(python3 "$here/imgcheck.py" "$work/a.orig" "$work/a.img" 512 \
	--any 2048:$((16 << 11)) --any $((2048 + (PAT_OFF << 11))):2048); then
	ok "host check: only fio's 16 MiB and the pattern's MiB of partition rw changed"
else fail "host check: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
cmp -s <(dd if="$work/a.img" bs=1M skip=$((2048 * 512 + PAT_OFF * 1048576)) iflag=skip_bytes count=1 status=none) "$work/pat" &&
	ok "host check: the pattern written through the fabric is in the image" || fail "host check: pattern not in the image"
exit $failed
