#!/usr/bin/env bash
# Controller faults (issue 8). One boot, one controller FT:
#   ns1 32 MiB, 512-byte blocks   ns2 32 MiB, 4 KiB blocks
# served with --nosgl (PRPs only, as on most consumer SSDs) to the guest's
# kernel through VDUSE. In the guest: vectored O_DIRECT reads and writes
# whose iovecs start at odd multiples of 512 bytes in different pages
# (tests/vm/vecio.py), and fio with iomem_align=512 and crc32c verify, on
# both namespaces; no I/O error, every byte read back as written.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork faults

mkimg "$work/a.img" 32
mkimg "$work/b.img" 32

D=$build/src/daemon/nvme-drv
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
blkof() { for b in /sys/bus/vdpa/devices/\$1/virtio*/block/*; do [ -e "\$b" ] && { echo "\${b##*/}"; return 0; }; done; return 1; }
waitblk() { for i in \$(seq 400); do blkof \$1 && return 0; sleep 0.05; done; return 1; }

$here/modprobe vduse virtio_vdpa virtio_blk
$D -v --nosgl --client vduse:f0 --device FT:n1 --client vduse:f1 --device FT:n2 2>"\$W/server.err" & srv=\$!
A=\$(waitblk f0); B=\$(waitblk f1)
echo "\$A \$B" >"\$W/devs.out"
[ -n "\$A" ] && [ -n "\$B" ] || { kill -TERM \$srv; wait \$srv; exit 0; }

step vec512 python3 $here/vecio.py /dev/\$A 512 8 300 1
step vec4k python3 $here/vecio.py /dev/\$B 4096 8 150 2
for d in A B; do
	dev=\$(eval echo \\\$\$d)
	step fio-\$d fio --name=v --filename=/dev/\$dev --size=8M --bsrange=4k-64k --iodepth=8 \\
		--rw=randwrite --iomem_align=512 --verify=crc32c --verify_state_save=0 \\
		--ioengine=libaio --direct=1
done
kill -TERM \$srv
wait \$srv; echo \$? >"\$W/sigterm.rc"
GUEST

start=$SECONDS
"$run" --timeout 400 --nvme serial=FT --ns file="$work/a.img" --ns file="$work/b.img",lbs=4096 -- \
	bash "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
echo "# vm run: $((SECONDS - start)) s"
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

read -r A B < "$work/devs.out"
if [ -n "$A" ] && [ -n "$B" ]; then ok "--nosgl: VDUSE block devices $A (512 B blocks) and $B (4 KiB blocks)"
else fail "block devices: '$(cat "$work/devs.out")'; server: $(tail -5 "$work/server.err" | tr '\n' ' ')"; exit 1; fi
grep -q 'PRP, max transfer' "$work/server.err" && ok "the controller runs with PRPs only" ||
	fail "server did not say PRP: $(grep -m1 'I/O queues' "$work/server.err")"

for s in vec512 vec4k; do
	expect_ok $s && echo "# $s: $(cat "$work/$s.out")"
done
for s in fio-A fio-B; do
	grep -q 'err= 0' "$work/$s.out" && ! grep -qi 'verify.*bad\|crc32c.*fail' "$work/$s.out" && [ "$(rc_of $s)" = 0 ] &&
		ok "$s: fio iomem_align=512 crc32c verify, no error" ||
		fail "$s: exit $(rc_of $s): $(grep -i 'err=\|verify' "$work/$s.out" "$work/$s.err" | head -3 | tr '\n' ' ')"
done
[ "$(cat "$work/sigterm.rc" 2>/dev/null)" = 0 ] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $(cat "$work/sigterm.rc" 2>/dev/null)"
if grep -qi 'sanitizer\|segfault\|assert\|: error: \|failed' "$work/server.err"; then
	fail "server log: $(grep -i 'sanitizer\|segfault\|assert\|: error: \|failed' "$work/server.err" | head -3 | tr '\n' ' ')"
else ok "server log: no errors"; fi
exit $failed
