#!/usr/bin/env bash
# Controller faults (issue 8). One boot, two controllers, all served with
# --nosgl (PRPs only, as on most consumer SSDs), --queue-depth 8 (7 command
# slots: split requests fill the queue) and --io-timeout 2, by the
# ASan/UBSan build when there is one, to the guest's kernel through VDUSE:
#   FT  ns1 32 MiB, 512-byte blocks   ns2 32 MiB, 4 KiB blocks
#   FE  ns1 16 MiB behind blkdebug: reads of sectors 2148 and 10247 and
#       writes of sector 7144 fail (media errors)
#       ns2 32 MiB behind a throttle group the host drives over QMP
# In the guest, in turn:
#   - vectored O_DIRECT reads and writes whose iovecs start at odd
#     multiples of 512 bytes in different pages (vecio.py), and fio with
#     iomem_align=512 and crc32c verify, on both FT namespaces;
#   - eight threads of such requests on FE:n1 (mediaerr.py): exactly the
#     requests that touch a bad sector get EIO, the rest succeed and read
#     back what was written;
#   - fio with crc32c verify on FE:n2 while the host throttles it to one
#     I/O per second: commands time out, are aborted, the controller is
#     reset, the throttle is lifted, and fio finishes with no error and no
#     corruption; meanwhile a writer on FT (the other controller) runs
#     undisturbed.
# Then SIGTERM; no sanitizer report, no kernel warning or hung task.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork faults

mkimg "$work/a.img" 32
mkimg "$work/b.img" 32
mkimg "$work/c.img" 16
mkimg "$work/d.img" 32
BAD_READ=2148:10247
BAD_WRITE=7144

D=$build/src/daemon/nvme-drv
asan=no
if [ -x "$top/build-asan/src/daemon/nvme-drv" ]; then
	D=$top/build-asan/src/daemon/nvme-drv
	asan=yes
fi
# NVD_TEST_DRV_ARGS: more nvme-drv options for every server here (t-threads.sh).
D="$D${NVD_TEST_DRV_ARGS:+ $NVD_TEST_DRV_ARGS}"
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
blkof() { for b in /sys/bus/vdpa/devices/\$1/virtio*/block/*; do [ -e "\$b" ] && { echo "\${b##*/}"; return 0; }; done; return 1; }
waitblk() { for i in \$(seq 400); do blkof \$1 && return 0; sleep 0.05; done; return 1; }
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$here/modprobe vduse virtio_vdpa virtio_blk
$D -v --nosgl --queue-depth 8 --io-timeout 2 --client vduse:f0 --device FT:n1 --client vduse:f1 --device FT:n2 \\
	--client vduse:e0 --device FE:n1 --client vduse:e1 --device FE:n2 2>"\$W/server.err" & srv=\$!
A=\$(waitblk f0); B=\$(waitblk f1); E0=\$(waitblk e0); E1=\$(waitblk e1)
echo "\$A \$B \$E0 \$E1" >"\$W/devs.out"
[ -n "\$A" ] && [ -n "\$B" ] && [ -n "\$E0" ] && [ -n "\$E1" ] || { kill -TERM \$srv; wait \$srv; exit 0; }
# No elevator: one request from the guest is one virtio request.
for d in \$A \$B \$E0 \$E1; do echo none >/sys/block/\$d/queue/scheduler 2>/dev/null; done

step vec512 python3 $here/vecio.py /dev/\$A 512 8 300 1
step vec4k python3 $here/vecio.py /dev/\$B 4096 8 150 2
step fio-A fio --name=v --filename=/dev/\$A --size=8M --bsrange=4k-64k --iodepth=8 --rw=randwrite \\
	--iomem_align=512 --verify=crc32c --verify_state_save=0 --ioengine=libaio --direct=1
step fio-B fio --name=v --filename=/dev/\$B --size=8M --bsrange=4k-64k --iodepth=8 --rw=randwrite \\
	--iomem_align=512 --verify=crc32c --verify_state_save=0 --ioengine=libaio --direct=1

step media python3 $here/mediaerr.py /dev/\$E0 8 150 1 $BAD_READ $BAD_WRITE

# The other controller's client writes and reads back all along.
( n=0; bad=0; head -c 1048576 /dev/urandom >/tmp/pat
  while [ ! -e "\$W/hang-done" ]; do
	dd if=/tmp/pat of=/dev/\$A bs=64k seek=256 oflag=direct status=none conv=notrunc &&
	dd if=/dev/\$A of=/tmp/back bs=64k skip=256 count=16 iflag=direct status=none &&
	cmp -s /tmp/pat /tmp/back || bad=\$((bad + 1))
	n=\$((n + 1))
  done; echo "\$n \$bad" >"\$W/other.out" ) & other=\$!
step fio-hang fio --name=h --filename=/dev/\$E1 --size=16M --bs=4k --iodepth=8 --rw=randwrite \\
	--verify=crc32c --verify_backlog=128 --verify_state_save=0 --ioengine=libaio --direct=1 \\
	--time_based --runtime=40 & fio=\$!
sleep 5
touch "\$W/hang-go"
wait \$fio
touch "\$W/hang-done"
wait \$other
kill -TERM \$srv
wait \$srv; echo \$? >"\$W/sigterm.rc"
dmesg >"\$W/dmesg.out"
GUEST

# The deadline options, on the host: a bad value is one error line, exit 1.
for a in "--io-timeout 0" "--admin-timeout 3601" "--io-timeout 5x"; do
	# shellcheck disable=SC2086  # (option and value, split on purpose)
	out=$("$build/src/daemon/nvme-drv" $a --list 2>&1); rc=$?
	if [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q "^nvme-drv: error: ${a%% *}: "; then
		ok "nvme-drv $a: $out"
	else fail "nvme-drv $a: exit $rc: $out"; fi
done

start=$SECONDS
qmp=$work/qmp.sock
"$run" --timeout 900 --qmp "$qmp" --nvme serial=FT --ns file="$work/a.img" --ns file="$work/b.img",lbs=4096 \
	--nvme serial=FE --ns file="$work/c.img",read-error=$BAD_READ,write-error=$BAD_WRITE \
	--ns file="$work/d.img",throttle-iops=0 -- bash "$work/guest.sh" > "$work/vm.out" 2>&1 & vm=$!
# The host's half of the hung-command test: throttle FE:n2 to one I/O a
# second once fio runs; lift it once nvme-drv has begun the reset (or
# after 60 s, so that a driver that never resets still lets the run end).
limit() { python3 "$here/qmp.py" "$qmp" qom-set "{\"path\": \"tgnvme1n2\", \"property\": \"limits\", \"value\": {\"iops-total\": $1}}" >/dev/null; }
while kill -0 $vm 2>/dev/null && [ ! -e "$work/hang-go" ]; do sleep 0.2; done
if [ -e "$work/hang-go" ]; then
	limit 1 && t0=$SECONDS && echo "# throttled FE:n2 to 1 IOPS"
	for i in $(seq 300); do grep -q 'resetting the controller' "$work/server.err" 2>/dev/null && break; sleep 0.2; done
	echo "# reset seen after $((SECONDS - t0)) s"
	sleep 1
	limit 0 && echo "# throttle lifted after $((SECONDS - t0)) s"
fi
wait $vm
vmrc=$?
echo "# vm run: $((SECONDS - start)) s (server with ASan/UBSan: $asan)"
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

read -r A B E0 E1 < "$work/devs.out"
if [ -n "$A" ] && [ -n "$B" ] && [ -n "$E0" ] && [ -n "$E1" ]; then ok "--nosgl: VDUSE block devices $A $B (FT) $E0 $E1 (FE)"
else fail "block devices: '$(cat "$work/devs.out")'; server: $(tail -5 "$work/server.err" | tr '\n' ' ')"; exit 1; fi
grep -q 'PRP, max transfer' "$work/server.err" && ok "the controllers run with PRPs only" ||
	fail "server did not say PRP: $(grep -m1 'I/O queues' "$work/server.err")"

fio_ok() { # STEP WHAT
	if grep -q 'err= 0' "$work/$1.out" && ! grep -qi 'verify.*bad\|crc32c.*fail\|verify failed' "$work/$1.out" "$work/$1.err" &&
		[ "$(rc_of $1)" = 0 ]; then ok "$1: $2"
	else fail "$1: exit $(rc_of $1): $(grep -i 'err=\|verify' "$work/$1.out" "$work/$1.err" | head -3 | tr '\n' ' ')"; fi
}
for s in vec512 vec4k; do
	expect_ok $s && echo "# $s: $(cat "$work/$s.out")"
done
fio_ok fio-A "fio iomem_align=512 crc32c verify (512 B blocks), no error"
fio_ok fio-B "fio iomem_align=512 crc32c verify (4 KiB blocks), no error"

expect_ok media
echo "# media: $(head -1 "$work/media.out")"

fio_ok fio-hang "fio crc32c verify across command timeouts and a controller reset: no error, no corruption"
grep -q 'timed out after 2000 ms; aborting' "$work/server.err" && ok "a command past its 2 s deadline was aborted" ||
	fail "no timeout/abort in the server log"
grep -q 'resetting the controller' "$work/server.err" && grep -q 'controller reset done' "$work/server.err" &&
	ok "the controller was reset and came back: $(grep -m1 'controller reset done' "$work/server.err" | sed 's/.*: controller/controller/')" ||
	fail "no reset: $(grep -i 'reset\|timed out' "$work/server.err" | head -3 | tr '\n' ' ')"
grep -q 'failing all I/O' "$work/server.err" && fail "a controller was given up: $(grep 'failing all I/O' "$work/server.err")"
# The reset cleared the controller's Doorbell Buffer Config; it is sent
# again before the kept commands go out, and must not have failed.
if [ "$(grep -c ', shadow doorbells$' "$work/server.err")" = 2 ] && ! grep -q 'Doorbell Buffer Config failed' "$work/server.err"; then
	ok "shadow doorbells in use on both controllers, configured again after the reset"
else fail "shadow doorbells: $(grep -i 'doorbell' "$work/server.err" | head -3 | tr '\n' ' ')"; fi
grep 'resetting the controller' "$work/server.err" | grep -qv '0000:00:05.0' &&
	fail "a controller other than FE was reset: $(grep 'resetting the controller' "$work/server.err" | head -2 | tr '\n' ' ')"
read -r n bad < "$work/other.out"
[ "${n:-0}" -gt 0 ] && [ "${bad:-1}" = 0 ] && ok "the other controller's client: $n write+read-back rounds during the fault, all intact" ||
	fail "the other controller's client: $n rounds, $bad bad"

[ "$(cat "$work/sigterm.rc" 2>/dev/null)" = 0 ] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $(cat "$work/sigterm.rc" 2>/dev/null)"
if grep -qi 'sanitizer\|runtime error\|segfault\|assert\|: error: ' "$work/server.err"; then
	fail "server log: $(grep -i 'sanitizer\|runtime error\|segfault\|assert\|: error: ' "$work/server.err" | head -3 | tr '\n' ' ')"
else ok "server log: no error, no sanitizer report"; fi
if grep -q -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more than' "$work/dmesg.out"; then
	fail "kernel log: $(grep -m3 -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more' "$work/dmesg.out" | tr '\n' ' ')"
else ok "kernel log: no warning, oops or hung task"; fi
exit $failed
