#!/usr/bin/env bash
# The server's own death (issue 9). One boot, one controller:
#   RS  ns1 64 MiB GPT: one (24 MiB, a VDUSE client)   ns2 16 MiB (vhost-user)
# In the guest, with the ASan/UBSan server and a state directory:
#  1. kill -9 at ten moments of start-up and serving (before the controller
#     is up, while it comes up, while the VDUSE device goes on the vdpa bus,
#     once served, under fio on the VDUSE disk, under nvme-drv-io on the
#     vhost-user socket): the process is gone within 2 s every time, and the
#     next start serves both clients again (a direct read from the VDUSE
#     disk, a verify over vhost-user);
#  2. ext4 on the VDUSE disk, fio with verify=crc32c writing and reading a
#     file in it while the server is killed and restarted three times: fio
#     ends with no error and its verify passes, fsck is clean;
#  3. SIGUSR2 (hand-over) under fio: the old server drains and leaves, the
#     new one takes the device over, fio goes on, nothing lost;
#  4. no hung task or warning in the kernel log; the last server stops on
#     SIGTERM with exit 0 and takes its device off the bus.
# On the host afterwards: nothing outside partition one and ns2 changed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork restart
# NVD_KEEP_WORK=1: keep the work directory (server logs, kernel log).
[ -n "${NVD_KEEP_WORK:-}" ] && { trap - EXIT; echo "# work directory: $work"; }

mkimg "$work/a.img" 64
sgdisk -Z -n 1:2048:+24M -c 1:one -n 2:51200:+16M -c 2:two "$work/a.img" >/dev/null
mkimg "$work/b.img" 16
cp "$work/a.img" "$work/a.orig"
cp "$work/b.img" "$work/b.orig"

asan=${ASAN_BUILD:-$top/build-asan}
D=$asan/src/daemon/nvme-drv
[ -x "$D" ] || D=$build/src/daemon/nvme-drv
# NVD_TEST_DRV_ARGS: more nvme-drv options for every server here (t-threads.sh).
D="$D${NVD_TEST_DRV_ARGS:+ $NVD_TEST_DRV_ARGS}"
IO=$build/tools/nvme-drv-io
CTL="$build/tools/nvme-drv-ctl --svr /tmp/ctl.sock"
ARGS="--state-dir /run/nvd-state --client vduse:rs0 --device partlabel:one --client /tmp/v0.sock --device RS:n2 --svr /tmp/ctl.sock"
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
ms() { echo \$(( \$(date +%s%N) / 1000000 )); }
blkof() { for b in /sys/bus/vdpa/devices/\$1/virtio*/block/*; do [ -e "\$b" ] && { echo "\${b##*/}"; return 0; }; done; return 1; }
waitblk() { for i in \$(seq 600); do blkof \$1 && return 0; sleep 0.05; done; return 1; }
waitsock() { for i in \$(seq 600); do [ -S \$1 ] && return 0; sleep 0.05; done; return 1; }
# kill -9 \$1 and print how many ms until it is gone from /proc (or "hung").
kill9() { local t=\$(ms); kill -9 \$1; for i in \$(seq 500); do [ -d /proc/\$1 ] || { wait \$1 2>/dev/null; echo \$((\$(ms) - t)); return 0; }; sleep 0.01; done; echo hung; cat /proc/\$1/task/*/stack >"\$W/hung-stack.\$1" 2>/dev/null; return 1; }
start() { $D -v $ARGS 2>>"\$W/server.err" & srv=\$!; }
# A direct read of the VDUSE disk within \$2 s (a read that waits for a
# server is in D state: no timeout(1) can end it; it is left behind).
readblk() {
	dd if=/dev/\$1 of=/dev/null bs=4k count=1 skip=\$((RANDOM % 1000)) iflag=direct status=none & local p=\$!
	for i in \$(seq \$((\$2 * 10))); do [ -d /proc/\$p ] || { wait \$p; return \$?; }; sleep 0.1; done
	echo "read of /dev/\$1 still waiting after \$2 s:"; cat /proc/\$p/stack; return 1
}
serves() { # the VDUSE disk reads and the vhost-user device verifies
	A=\$(waitblk rs0) || { echo "no block device for rs0"; return 1; }
	readblk \$A 30 || return 1
	waitsock /tmp/v0.sock || { echo "no socket"; return 1; }
	timeout 30 $IO --socket /tmp/v0.sock --rw verify --count 64 -q || { echo "verify failed"; return 1; }
}
$here/modprobe vduse virtio_vdpa virtio_blk
mkdir -p /mnt/a

# 1. Ten moments.
n=0
for moment in 0 40 120 250 400 700 1000 served fio io; do
	n=\$((n + 1))
	start
	case \$moment in
	served) serves >/dev/null 2>&1 ;;
	fio) serves >/dev/null 2>&1; fio --name=f --filename=/dev/\$(blkof rs0) --size=8M --bs=4k --iodepth=8 \\
		--rw=randrw --ioengine=libaio --direct=1 --time_based --runtime=30 >/dev/null 2>&1 & load=\$!; sleep 1 ;;
	io) serves >/dev/null 2>&1; $IO --socket /tmp/v0.sock --rw randwrite --qd 8 --time 30 -q >/dev/null 2>&1 & load=\$!; sleep 1 ;;
	*) sleep \$(printf '%d.%03d' \$((moment / 1000)) \$((moment % 1000))) ;;
	esac
	echo "\$moment \$(kill9 \$srv)" >>"\$W/kills.out"
	start
	if serves >"\$W/serve-\$n.err" 2>&1; then echo "\$moment ok" >>"\$W/restarts.out"
	else echo "\$moment FAILED" >>"\$W/restarts.out"; dmesg | tail -20 >>"\$W/serve-\$n.err"; fi
	[ -n "\${load:-}" ] && { kill \$load 2>/dev/null; wait \$load 2>/dev/null; load=; }
	kill9 \$srv >/dev/null
done

# 1b. A dynamic client is back after a kill, with its claim; once
# destroyed, it stays gone.
start
serves >/dev/null 2>&1
step dyn-create $CTL create 0 device=partlabel:two vduse=rs1
kill9 \$srv >/dev/null
start
serves >/dev/null 2>&1
B=\$(waitblk rs1) && readblk \$B 30 >"\$W/dyn-back.out" 2>&1; echo \$? >"\$W/dyn-back.rc"
step dyn-list $CTL list
step dyn-claim $CTL create 0 device=partlabel:two vduse=rs2
step dyn-destroy $CTL destroy rs1
kill9 \$srv >/dev/null
start
serves >/dev/null 2>&1
ls -d /sys/bus/vdpa/devices/rs1 >"\$W/dyn-gone.out" 2>&1
kill9 \$srv >/dev/null

# 2. ext4 and fio verify across three kills.
start
A=\$(waitblk rs0)
step mkfs mkfs.ext4 -q -F /dev/\$A
step mount mount -t ext4 /dev/\$A /mnt/a
fio --name=v --filename=/mnt/a/data --size=12M --bs=4k --iodepth=8 --rw=randwrite --verify=crc32c \\
	--verify_state_save=0 --ioengine=libaio --direct=1 --verify_fatal=1 >"\$W/fio-kill.out" 2>&1 & fio=\$!
for i in 1 2 3; do
	sleep 2
	echo "fio-\$i \$(kill9 \$srv)" >>"\$W/kills.out"
	start
done
for i in \$(seq 300); do kill -0 \$fio 2>/dev/null || break; sleep 1; done
wait \$fio; echo \$? >"\$W/fio-kill.rc"
step umount umount /mnt/a
step fsck fsck.ext4 -fn /dev/\$A

# 3. Hand-over under load: SIGUSR2, then the successor.
fio --name=h --filename=/dev/\$A --size=8M --offset=16M --bs=4k --iodepth=8 --rw=randwrite \\
	--verify=crc32c --verify_state_save=0 --ioengine=libaio --direct=1 --verify_fatal=1 \\
	--loops=4 >"\$W/fio-usr2.out" 2>&1 & fio=\$!
sleep 1
t=\$(ms); kill -USR2 \$srv
for i in \$(seq 300); do [ -d /proc/\$srv ] || break; sleep 0.1; done
wait \$srv; echo "\$? \$((\$(ms) - t))" >"\$W/usr2.out"
kill -0 \$fio 2>/dev/null && echo "fio still running" >"\$W/usr2-load.out"
start
for i in \$(seq 300); do kill -0 \$fio 2>/dev/null || break; sleep 1; done
wait \$fio; echo \$? >"\$W/fio-usr2.rc"
serves >/dev/null 2>&1

# 4. The end: SIGTERM takes the device off the bus.
kill -TERM \$srv; wait \$srv; echo \$? >"\$W/sigterm.rc"
ls -d /sys/bus/vdpa/devices/rs0 /dev/vduse/rs0 >"\$W/left.out" 2>/dev/null
dmesg >"\$W/dmesg.out"
GUEST

start=$SECONDS
"$run" --timeout 900 --mem 3072 --nvme serial=RS --ns file="$work/a.img" --ns file="$work/b.img" -- \
	bash "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
echo "# vm run: $((SECONDS - start)) s"
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

# 1.
while read -r moment took; do
	case $took in
	hung) fail "kill -9 at '$moment': still there after 5 s: $(cat "$work"/hung-stack.* 2>/dev/null | head -5 | tr '\n' ' ')" ;;
	*) if [ "$took" -le 2000 ]; then ok "kill -9 at '$moment': gone after $took ms"
	   else fail "kill -9 at '$moment': gone only after $took ms"; fi ;;
	esac
done < "$work/kills.out"
[ "$(grep -c . "$work/kills.out")" -ge 13 ] || fail "only $(grep -c . "$work/kills.out") kills recorded"
while read -r moment res; do
	if [ "$res" = ok ]; then ok "restart after kill at '$moment': both clients served"
	else fail "restart after kill at '$moment': $(grep -l . "$work"/serve-*.err | head -1 | xargs cat | head -5 | tr '\n' ' ')"; fi
done < "$work/restarts.out"
[ "$(grep -c . "$work/restarts.out")" = 10 ] || fail "only $(grep -c . "$work/restarts.out") restarts recorded"

# 1b.
expect_ok dyn-create
[ "$(cat "$work/dyn-back.rc")" = 0 ] && ok "a dynamic VDUSE client is back after kill -9 and a restart" ||
	fail "dynamic client not back: $(cat "$work/dyn-back.out" | head -3 | tr '\n' ' ')"
grep -q 'client vduse:rs1 .*dynamic' "$work/dyn-list.out" && ok "list shows it as dynamic again" ||
	fail "list: $(cat "$work/dyn-list.out")"
if [ "$(rc_of dyn-claim)" = 1 ] && grep -q 'EBUSY' "$work/dyn-claim.err"; then ok "its claim is back: a second client of it is refused (EBUSY)"
else fail "claim after restart: exit $(rc_of dyn-claim): $(cat "$work/dyn-claim.err")"; fi
expect_ok dyn-destroy
grep -q 'No such file' "$work/dyn-gone.out" && ok "a destroyed dynamic client does not come back" ||
	fail "destroyed client came back: $(cat "$work/dyn-gone.out")"

# 2.
expect_ok mkfs
expect_ok mount
if [ "$(cat "$work/fio-kill.rc")" = 0 ] && grep -q 'err= 0' "$work/fio-kill.out"; then
	ok "fio verify=crc32c on ext4 across three kill -9 and restarts: no error"
else fail "fio across kills: exit $(cat "$work/fio-kill.rc"): $(grep -i 'err\|verify\|bad' "$work/fio-kill.out" | head -3 | tr '\n' ' ')"; fi
expect_ok umount
expect_ok fsck
grep -q ' files (' "$work/fsck.out" && ok "fsck -fn clean: $(grep ' files (' "$work/fsck.out")" || fail "fsck: $(cat "$work/fsck.out")"
grep -q 'took over VDUSE device rs0' "$work/server.err" && ok "restarted servers took the VDUSE device over" ||
	fail "no take-over in the server log"
grep -q 'left in flight by an earlier server' "$work/server.err" &&
	ok "requests left in flight were served again ($(grep -c 'left in flight' "$work/server.err") times)" ||
	echo "# no request was in flight at a kill"

# 3.
read -r usr2rc usr2ms < "$work/usr2.out"
[ "$usr2rc" = 0 ] && ok "SIGUSR2 under load: the old server handed over and exited 0 after $usr2ms ms" ||
	fail "SIGUSR2: exit $usr2rc"
[ -s "$work/usr2-load.out" ] && ok "fio was still running when the successor started" ||
	fail "fio had finished before the hand-over: no load across it"
if [ "$(cat "$work/fio-usr2.rc")" = 0 ] && grep -q 'err= 0' "$work/fio-usr2.out"; then
	ok "fio verify=crc32c across the hand-over: no error"
else fail "fio across SIGUSR2: $(grep -i 'err\|verify\|bad' "$work/fio-usr2.out" | head -3 | tr '\n' ' ')"; fi

# 4.
[ "$(cat "$work/sigterm.rc")" = 0 ] && ok "last server: SIGTERM exit 0" || fail "last server: SIGTERM exit $(cat "$work/sigterm.rc")"
[ -s "$work/left.out" ] && fail "after SIGTERM still there: $(tr '\n' ' ' < "$work/left.out")" ||
	ok "SIGTERM took the VDUSE device off the bus"
if grep -qi 'sanitizer\|runtime error' "$work/server.err"; then
	fail "sanitizer report: $(grep -i -m3 'sanitizer\|runtime error' "$work/server.err" | tr '\n' ' ')"
else ok "no sanitizer report from any server"; fi
if grep -q -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more than' "$work/dmesg.out"; then
	fail "kernel log: $(grep -m3 -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more' "$work/dmesg.out" | tr '\n' ' ')"
else ok "kernel log: no warning, oops or hung task"; fi

ic=$here/imgcheck.py
if out=$(python3 "$ic" "$work/a.orig" "$work/a.img" 512 --any 2048:49152); then ok "host check a: only partition one changed (GPT and partition two unchanged)"
else fail "host check a: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
exit $failed
