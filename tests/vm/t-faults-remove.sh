#!/usr/bin/env bash
# A controller removed mid-I/O (issue 8). Two controllers, each served to
# the guest's kernel through VDUSE by nvme-drv (the ASan/UBSan build when
# there is one): FT (on the root bus) and FR, behind a PCIe root port. While
# fio reads FR's disk and a writer on FT's disk writes and reads back, the
# host removes FR (QMP device_del): the guest's pciehp unbinds vfio-pci,
# which asks nvme-drv for the device back (VFIO device request). nvme-drv
# must stop FR, fail its I/O (fio ends with EIO, promptly), let the
# device go so the removal completes (no task blocked in the kernel),
# and go on serving FT undisturbed; SIGTERM then ends it cleanly.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork faults-remove

mkimg "$work/a.img" 16
mkimg "$work/r.img" 16
D=$build/src/daemon/nvme-drv
asan=no
if [ -x "$top/build-asan/src/daemon/nvme-drv" ]; then
	D=$top/build-asan/src/daemon/nvme-drv
	asan=yes
fi
CTL="$build/tools/nvme-drv-ctl --svr /tmp/ctl.sock"
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
ms() { echo \$(( \$(date +%s%N) / 1000000 )); }
blkof() { for b in /sys/bus/vdpa/devices/\$1/virtio*/block/*; do [ -e "\$b" ] && { echo "\${b##*/}"; return 0; }; done; return 1; }
waitblk() { for i in \$(seq 400); do blkof \$1 && return 0; sleep 0.05; done; return 1; }
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

ls -d /sys/bus/pci/devices/0000:00:05.0/0000:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f].[0-7] >"\$W/fr-bdf.out" 2>&1
$here/modprobe vduse virtio_vdpa virtio_blk
$D -v --svr /tmp/ctl.sock --client vduse:f0 --device FT:n1 --client vduse:r0 --device FR:n1 2>"\$W/server.err" & srv=\$!
A=\$(waitblk f0); R=\$(waitblk r0)
echo "\$A \$R" >"\$W/devs.out"
[ -n "\$A" ] && [ -n "\$R" ] || { kill -TERM \$srv; wait \$srv; exit 0; }

( n=0; bad=0; head -c 1048576 /dev/urandom >/tmp/pat
  while [ ! -e /tmp/other-done ]; do
	dd if=/tmp/pat of=/dev/\$A bs=64k oflag=direct status=none conv=notrunc &&
	dd if=/dev/\$A of=/tmp/back bs=64k count=16 iflag=direct status=none &&
	cmp -s /tmp/pat /tmp/back || bad=\$((bad + 1))
	n=\$((n + 1))
  done; echo "\$n \$bad" >"\$W/other.out" ) & other=\$!
fio --name=r --filename=/dev/\$R --size=16M --bs=4k --iodepth=8 --rw=randread --ioengine=libaio \\
	--direct=1 --time_based --runtime=120 >"\$W/fio-r.out" 2>&1 & fio=\$!
sleep 3
t=\$(ms)
touch "\$W/remove-go"
wait \$fio; echo \$? >"\$W/fio-r.rc"
echo \$((\$(ms) - t)) >"\$W/fio-r-ms.out"
kill -0 \$srv 2>/dev/null && echo alive >"\$W/alive.out"
for i in \$(seq 100); do [ -e "\$(cat \$W/fr-bdf.out)" ] || break; sleep 0.2; done
[ -e "\$(cat \$W/fr-bdf.out)" ] && echo present >"\$W/fr-after.out" || echo gone >"\$W/fr-after.out"
step list $CTL list
sleep 2
touch /tmp/other-done
wait \$other
kill -TERM \$srv
wait \$srv; echo \$? >"\$W/sigterm.rc"
dmesg >"\$W/dmesg.out"
GUEST

start=$SECONDS
qmp=$work/qmp.sock
"$run" --timeout 400 --qmp "$qmp" --nvme serial=FT --ns file="$work/a.img" \
	--nvme serial=FR,hotplug=on --ns file="$work/r.img" -- bash "$work/guest.sh" > "$work/vm.out" 2>&1 & vm=$!
while kill -0 $vm 2>/dev/null && [ ! -e "$work/remove-go" ]; do sleep 0.2; done
[ -e "$work/remove-go" ] && python3 "$here/qmp.py" "$qmp" device_del '{"id": "nvme1"}' >/dev/null &&
	echo "# device_del nvme1 sent"
wait $vm
vmrc=$?
echo "# vm run: $((SECONDS - start)) s (server with ASan/UBSan: $asan)"
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

read -r A R < "$work/devs.out"
if [ -n "$A" ] && [ -n "$R" ]; then ok "VDUSE block devices $A (FT) and $R (FR at $(cat "$work/fr-bdf.out"), behind a root port)"
else fail "block devices: '$(cat "$work/devs.out")'; server: $(tail -5 "$work/server.err" | tr '\n' ' ')"; exit 1; fi
ms=$(cat "$work/fio-r-ms.out")
if [ "$(cat "$work/fio-r.rc")" != 0 ] && grep -qi 'Input/output error\|err= *5' "$work/fio-r.out"; then
	ok "fio on the removed controller's disk ended with EIO, ${ms} ms after device_del"
else fail "fio on the removed disk: exit $(cat "$work/fio-r.rc"): $(grep -i 'err' "$work/fio-r.out" | head -2 | tr '\n' ' ')"; fi
[ "${ms:-999999}" -le 30000 ] && ok "within 30 s of the removal request" || fail "fio took ${ms} ms to end"
[ -e "$work/alive.out" ] && ok "nvme-drv kept running" || fail "nvme-drv died: $(tail -3 "$work/server.err" | tr '\n' ' ')"
grep -q 'the kernel asks for the device back' "$work/server.err" && grep -q 'device released to the kernel' "$work/server.err" &&
	ok "nvme-drv failed FR's I/O and released it: $(grep -m1 'asks for the device back' "$work/server.err" | sed 's/^[^:]*: //')" ||
	fail "no device request handling in the server log: $(grep -i 'remov\|release\|gone' "$work/server.err" | head -3 | tr '\n' ' ')"
[ "$(cat "$work/fr-after.out")" = gone ] && ok "the removal completed: FR is gone from the guest's PCI bus" ||
	fail "FR still on the guest's PCI bus after 20 s"
echo "# nvme-drv-ctl list after the removal: $(tr '\n' '|' < "$work/list.out")"
grep -q '^controller 0000:[^ ]* serial="FR" state=gone$' "$work/list.out" &&
	grep -q '^controller 0000:00:04.0 serial="FT" state=ok$' "$work/list.out" &&
	ok "nvme-drv-ctl list shows FR as gone, FT as ok" || fail "list: $(tr '\n' '|' < "$work/list.out")"
read -r n bad < "$work/other.out"
[ "${n:-0}" -gt 0 ] && [ "${bad:-1}" = 0 ] && ok "the other controller's client: $n write+read-back rounds, all intact" ||
	fail "the other controller's client: $n rounds, $bad bad"
[ "$(cat "$work/sigterm.rc" 2>/dev/null)" = 0 ] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $(cat "$work/sigterm.rc" 2>/dev/null)"
if grep -qi 'sanitizer\|runtime error\|segfault\|assert' "$work/server.err"; then
	fail "server log: $(grep -i 'sanitizer\|runtime error\|segfault\|assert' "$work/server.err" | head -3 | tr '\n' ' ')"
else ok "server log: no sanitizer report"; fi
if grep -q -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more than' "$work/dmesg.out"; then
	fail "kernel log: $(grep -m3 -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more' "$work/dmesg.out" | tr '\n' ' ')"
else ok "kernel log: no warning, oops or hung task"; fi
exit $failed
