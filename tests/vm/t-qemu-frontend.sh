#!/usr/bin/env bash
# A real front end: QEMU's vhost-user-blk-pci on nvme-drv's socket, with a
# nested Linux guest reading and writing the partition through virtio-blk.
#
# Host: a 64 MiB image of random bytes with a GPT (partition 1 "vm", 32 MiB
# at LBA 2048), and a tiny initramfs for the nested guest (busybox-static,
# virtio_blk, a 1 MiB random pattern and an /init that checks the disk).
# Outer guest (tests/vm/run): nvme-drv serves partlabel:vm on /tmp/vub.sock;
# a nested QEMU (TCG, q35, memfd memory shared with nvme-drv) boots the same
# kernel as the outer guest with that initramfs. Its /init reports through
# the serial console (NESTED-* lines): the disk's size, read-only flag,
# serial (GET_ID), cache mode; md5sums of what the host put at 8 MiB and in
# the last 4 KiB; writes the pattern at 4 MiB with O_DIRECT and fsync (FLUSH),
# reads it back with O_DIRECT and compares. Then the server's death (issue
# 9): the chardev has reconnect=1; on NESTED-KILLME the outer guest kills
# nvme-drv with kill -9 and starts it again while the nested guest writes
# the pattern at 12 MiB in 128 KiB pieces and reads it back: no error may
# reach the guest (QEMU reconnects, nvme-drv serves again what the inflight
# region says was in flight). The same once more at 20 MiB with a SIGTERM
# stop (what systemctl restart sends) instead of kill -9. Then it resets
# (QEMU, run with -no-reboot, ends). nvme-drv runs with -v; NVD_DRV_V=-vvv traces every
# vhost-user message into its log (kept with NVD_KEEP_WORK=1).
# Host afterwards: the markers, nvme-drv's clean exit, and the image: the
# pattern at partition start + 4 MiB, every other byte unchanged.
#
# Slow by nature (the nested guest runs under TCG inside TCG: 40-60 s, most
# of it the nested kernel's boot, 1 s or so per forked command): one smoke
# test, not a suite.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
T0=$EPOCHREALTIME
mkwork qemu-frontend
# NVD_KEEP_WORK=1: keep the work directory (console logs, nvme-drv's log).
[ -n "${NVD_KEEP_WORK:-}" ] && { trap - EXIT; echo "# work directory: $work"; }

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

D=$build/src/daemon/nvme-drv
if [ ! -x "$D" ]; then fail "t-qemu-frontend: $D is not built"; exit 1; fi
if ! command -v qemu-system-x86_64 >/dev/null; then skip "t-qemu-frontend: qemu-system-x86_64 is not installed"; exit 0; fi

# The outer test bed's kernel, reused for the nested guest. The cache is
# under $HOME (a tmpfs in the outer guest): copy what the nested QEMU needs
# into the work directory.
"$run" --prepare >/dev/null 2>"$work/prepare.err" ||
	{ fail "vm/run --prepare: $(tail -n 2 "$work/prepare.err" | tr '\n' ' ')"; exit 1; }
cache=${NVD_CACHE:-$HOME/.cache/nvme-drv}
kver=${NVD_KVER:-$(cd "$cache/kernel" && ls -d 6.12.*-amd64 2>/dev/null | sort -V | tail -n 1)}
kdir=$cache/kernel/$kver
# The uncompressed kernel boots via PVH: no decompression under nested TCG.
if [ -f "$cache/vmlinux/$kver" ]; then kimg=$cache/vmlinux/$kver; else kimg=$kdir/boot/vmlinuz-$kver; fi
if [ -z "$kver" ] || [ ! -f "$kimg" ]; then fail "t-qemu-frontend: no cached kernel in $cache"; exit 1; fi
ln "$kimg" "$work/kernel" 2>/dev/null || cp "$kimg" "$work/kernel"

# --- the disk ---------------------------------------------------------------
PSTART=$((2048 * 512))		# partition "vm": LBA 2048, 32 MiB
PSIZE=$((32 << 20))
mkimg "$work/disk.img" 64
sgdisk -Z -n 1:2048:+32M -c 1:vm "$work/disk.img" >/dev/null ||
	{ fail "sgdisk"; exit 1; }
cp "$work/disk.img" "$work/disk.orig"
head -c $((1 << 20)) /dev/urandom > "$work/pattern.bin"
md5() { md5sum | cut -d' ' -f1; }
want_read8m=$(tail -c +$((PSTART + (8 << 20) + 1)) "$work/disk.img" | head -c $((1 << 20)) | md5)
want_last=$(tail -c +$((PSTART + PSIZE - 4096 + 1)) "$work/disk.img" | head -c 4096 | md5)

# --- the nested guest's initramfs ------------------------------------------
R=$work/nested-root
mkdir -p "$R"/{bin,dev,sys,lib/modules}
cp /bin/busybox "$R/bin/busybox"
if ldd "$R/bin/busybox" >/dev/null 2>&1; then fail "t-qemu-frontend: /bin/busybox is not static (busybox-static)"; exit 1; fi
for n in sh mount insmod dd md5sum cmp sleep reboot; do ln -s busybox "$R/bin/$n"; done
cp "$work/pattern.bin" "$R/pattern.bin"
: > "$R/modules.load"
while read -r m; do
	n=$(basename "$m"); n=${n%.xz}; n=${n%.ko}
	case $m in *.xz) xz -dc "$m" > "$R/lib/modules/$n.ko" ;; *) cp "$m" "$R/lib/modules/$n.ko" ;; esac
	echo "$n" >> "$R/modules.load"
done < <(/sbin/modprobe -d "$kdir" -S "$kver" --show-depends virtio_blk | awk '$1 == "insmod" { print $2 }')
# Every command forked in the nested guest costs about 0.3 s (TCG inside
# TCG): /init reads sysfs with the shell's own `read` and pipes straight to
# the console; the host compares the checksums.
cat > "$R/init" <<'INIT'
#!/bin/busybox sh
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t sysfs sysfs /sys
exec 0</dev/console 1>/dev/console 2>&1
echo "NESTED-INIT"
while read -r m; do insmod "/lib/modules/$m.ko" || echo "NESTED-FAIL insmod $m"; done < /modules.load
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b /dev/vda ]; then
	B=/sys/block/vda
	read -r sz < $B/size; read -r ro < $B/ro; read -r wc < $B/queue/write_cache
	read -r serial < $B/serial	# a GET_ID request
	echo "NESTED-SIZE $((sz * 512))"
	echo "NESTED-RO $ro"
	echo "NESTED-SERIAL $serial"
	echo "NESTED-CACHE $wc"
	echo -n "NESTED-READ8M "
	dd if=/dev/vda bs=1M skip=8 count=1 iflag=direct 2>/dev/null | md5sum
	echo -n "NESTED-READLAST "
	dd if=/dev/vda bs=4096 skip=$((sz / 8 - 1)) count=1 iflag=direct 2>/dev/null | md5sum
	# 1 MiB in 256 pages: requests of seg_max buffers, indirect tables;
	# fsync on a write-back disk: a FLUSH.
	if dd if=/pattern.bin of=/dev/vda bs=1M seek=4 count=1 oflag=direct conv=notrunc,fsync 2>/dev/null; then
		echo "NESTED-OK write"
	else
		echo "NESTED-FAIL write"
	fi
	if dd if=/dev/vda bs=1M skip=4 count=1 iflag=direct 2>/dev/null | cmp /pattern.bin -; then
		echo "NESTED-OK write-read"
	else
		echo "NESTED-FAIL write-read"
	fi
	echo "NESTED-KILLME"
	i=0
	while [ $i -lt 8 ]; do
		dd if=/pattern.bin of=/dev/vda bs=128k skip=$i seek=$((96 + i)) count=1 oflag=direct \
			conv=notrunc 2>/dev/null || echo "NESTED-FAIL phase2 write $i"
		i=$((i + 1))
	done
	if dd if=/dev/vda bs=1M skip=12 count=1 iflag=direct 2>/dev/null | cmp /pattern.bin -; then
		echo "NESTED-OK restart"
	else
		echo "NESTED-FAIL restart read-back"
	fi
	echo "NESTED-TERMME"
	i=0
	while [ $i -lt 8 ]; do
		dd if=/pattern.bin of=/dev/vda bs=128k skip=$i seek=$((160 + i)) count=1 oflag=direct \
			conv=notrunc 2>/dev/null || echo "NESTED-FAIL phase3 write $i"
		i=$((i + 1))
	done
	if dd if=/dev/vda bs=1M skip=20 count=1 iflag=direct 2>/dev/null | cmp /pattern.bin -; then
		echo "NESTED-OK restart-term"
	else
		echo "NESTED-FAIL restart-term read-back"
	fi
else
	echo "NESTED-FAIL no /dev/vda"
fi
echo "NESTED-END"
# A reset ends QEMU (-no-reboot); without ACPI there is no power-off.
exec reboot -f
INIT
chmod 0755 "$R/init"
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) > "$work/nested.cpio" ||
	{ fail "nested initramfs: cpio"; exit 1; }
rm -rf "$R"

# --- the outer guest ----------------------------------------------------------
# The nested QEMU: its RAM is a shared memfd (nvme-drv maps it for DMA);
# -nodefaults: no VGA, NIC or other devices; one vCPU. qboot instead of
# SeaBIOS when installed (qemu-system-data): a PVH boot needs no more, and
# it is seconds faster under nested TCG.
# Kernel parameters, all to save boot time under nested TCG (about 40% of
# it): no ACPI (its interpreter alone takes seconds), no mitigations, no
# read-only text (and no W+X scan), no crypto self-tests, TSC trusted, one
# UART, and no slow initcalls that this guest has no use for (jitter RNG,
# certificate loading, RAS, RTC, i8042, ...).
bios=
[ -f /usr/share/qemu/qboot.rom ] && bios="-bios /usr/share/qemu/qboot.rom"
append="console=ttyS0 panic=-1 quiet acpi=off mitigations=off rodata=off cryptomgr.notests"
append+=" tsc=reliable no_timer_check 8250.nr_uarts=1 initcall_blacklist=jent_mod_init"
append+=",load_system_certificate_list,cec_init,cmos_init,i8042_init,bpf_tcp_ca_kfunc_init"
append+=",init_encrypted,crypto_kdf108_init,trace_eval_init,param_sysfs_builtin_init"
nested_qemu="qemu-system-x86_64 -nodefaults -no-user-config -accel tcg $bios
 -machine q35,memory-backend=mem -object memory-backend-memfd,id=mem,size=256M,share=on -m 256M
 -smp 1 -display none -no-reboot -serial stdio -monitor none
 -kernel $work/kernel -initrd $work/nested.cpio -append '$append'
 -chardev socket,id=c0,path=/tmp/vub.sock,reconnect=1 -device vhost-user-blk-pci,chardev=c0,num-queues=1"
# Console lines are stamped with the outer guest's clock as they arrive.
cat > "$work/guest.sh" <<GUEST
W=$work
# The markers the watcher acts on are flagged on the guest's tmpfs as they
# arrive (the console file is on a 9p share: no re-reading it in a loop).
stamp() {
	while IFS= read -r l; do
		echo "\$EPOCHREALTIME \${l%\$'\\r'}"
		case \$l in *NESTED-KILLME*) : > /tmp/mark-kill ;; *NESTED-TERMME*) : > /tmp/mark-term ;; esac
	done
}
rm -f /tmp/mark-*
echo \$EPOCHREALTIME > \$W/t-start
$D ${NVD_DRV_V:--v} --client /tmp/vub.sock --device partlabel:vm 2>"\$W/drv.err" & pid=\$!
echo \$pid > /tmp/drv.pid
rm -f /tmp/drv3.rc
for i in \$(seq 100); do [ -S /tmp/vub.sock ] && break; kill -0 \$pid 2>/dev/null || break; sleep 0.1; done
echo \$EPOCHREALTIME > \$W/t-ready
# The server's death mid-I/O, and a successor.
(while [ ! -e /tmp/mark-kill ]; do sleep 0.05; done
 echo \$EPOCHREALTIME > \$W/t-saw-kill
 sleep 0.3
 kill -9 \$pid; echo \$EPOCHREALTIME > \$W/t-killed
 while [ -d /proc/\$pid ]; do sleep 0.05; done
 $D ${NVD_DRV_V:--v} --client /tmp/vub.sock --device partlabel:vm 2>"\$W/drv2.err" & pid=\$!
 echo \$EPOCHREALTIME > \$W/t-restarted
 # Then a stop by SIGTERM (what systemctl restart sends) and a successor.
 while [ ! -e /tmp/mark-term ]; do sleep 0.05; done
 echo \$EPOCHREALTIME > \$W/t-saw-term
 sleep 0.3
 kill -TERM \$pid; wait \$pid; echo \$? > \$W/drv2.rc
 $D ${NVD_DRV_V:--v} --client /tmp/vub.sock --device partlabel:vm 2>"\$W/drv3.err" & echo \$! > /tmp/drv.pid
 echo \$EPOCHREALTIME > \$W/t-restarted2
 wait \$!; echo \$? > /tmp/drv3.rc) &
# An error in nvme-drv (e.g. a ring it refuses: "device needs reset") leaves
# the nested guest waiting for ever: stop it then rather than at the timeout.
(while sleep 1; do
	[ -s /tmp/nested.pid ] || continue
	kill -0 \$(cat /tmp/nested.pid) 2>/dev/null || break
	if cat "\$W"/drv*.err | grep -q ': error: '; then
		echo "stopped early: nvme-drv reported an error" > "\$W/nested.stopped"
		kill \$(cat /tmp/nested.pid); break
	fi
done) & wpid=\$!
timeout 300 $(echo "$nested_qemu" | tr '\n' ' ') -pidfile /tmp/nested.pid 2>"\$W/nested.err" </dev/null | stamp >"\$W/nested.console"
echo \${PIPESTATUS[0]} > \$W/nested.rc
echo \$EPOCHREALTIME > \$W/t-nested
kill \$wpid 2>/dev/null
pid=\$(cat /tmp/drv.pid)
kill -TERM \$pid; while [ -d /proc/\$pid ]; do sleep 0.1; done
# The successor is the watcher's child: its exit status comes from there.
for i in \$(seq 50); do [ -s /tmp/drv3.rc ] && break; sleep 0.1; done
[ -s /tmp/drv3.rc ] && cat /tmp/drv3.rc > \$W/drv.rc
# Whatever went wrong, the verdicts below say what (a missing drv3.rc is a
# successor that never ran or never ended): the script itself succeeds.
true
GUEST

run_vm() {
	local f

	# A second attempt keeps the first one's files as *.first (with
	# NVD_KEEP_WORK=1: the whole console of a nested panic). The time
	# line's "host" then includes the first attempt.
	for f in "$work"/{vm.out,nested.console,nested.err,nested.rc,nested.stopped,drv*.err,drv*.rc,t-*}; do
		[ -e "$f" ] && mv -f "$f" "$f.first"
	done
	cp "$work/disk.orig" "$work/disk.img"
	T1=$EPOCHREALTIME
	"$run" --timeout 400 --nvme serial=NVD-F --ns file="$work/disk.img" -- bash "$work/guest.sh" > "$work/vm.out" 2>&1
	vmrc=$?
	T2=$EPOCHREALTIME
}
run_vm
# A nested kernel that dies before its /init (TCG inside TCG on a busy
# machine: once in CI, with nothing to show for it; on a host with both
# cores hogged, "Kernel panic - not syncing: Attempted to kill the idle
# task!" 17 s into its boot) has exchanged no more with nvme-drv than
# QEMU's start-up handshake. Only then is it run again, once, visibly
# (with what the first run printed): not when nvme-drv said anything, nor
# QEMU's vhost-user code (a refusal), nor when the timeout ended QEMU (124:
# nvme-drv hanging in that handshake looks so, since with reconnect=1 QEMU
# waits for it for ever), nor when the watcher stopped it.
if [ $vmrc = 0 ] && ! grep -q ' NESTED-INIT' "$work/nested.console" 2>/dev/null &&
	[ "$(cat "$work/nested.rc" 2>/dev/null)" != 124 ] && [ ! -e "$work/nested.stopped" ] &&
	! grep -q -e ': error: ' -e ': warning: ' "$work"/drv*.err 2>/dev/null &&
	! grep -q -i vhost "$work/nested.err" 2>/dev/null; then
	echo "# retry: the nested guest never reached /init (QEMU exit $(cat "$work/nested.rc" 2>/dev/null)):" \
		"$(tail -n 3 "$work/nested.err" 2>/dev/null | tr '\n' ' ') console: $(tail -n 5 "$work/nested.console" 2>/dev/null | cut -d' ' -f2- | tr '\n' ' ')"
	run_vm
fi
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

# --- verdicts -----------------------------------------------------------------
# Console lines: "STAMP NESTED-WHAT VALUE...".
C=$work/nested.console
marker() { awk -v m="$1" '$2 == m { $1 = $2 = ""; sub(/^ +/, ""); print; exit }' "$C"; }
word() { marker "$1" | cut -d' ' -f1; }
has() { awk -v m="$1" -v w="$2" '$2 == m && $3 == w { f = 1 } END { exit !f }' "$C"; }
at() { awk -v m="$1" '$2 == m { print $1; exit }' "$C"; }
console_tail() { tail -n 5 "$C" | cut -d' ' -f2- | tr '\n' ' '; }
nrc=$(cat "$work/nested.rc" 2>/dev/null || echo missing)
# (QEMU exits 0 on SIGTERM too: the reset must be on the console.)
if [ "$nrc" = 0 ] && [ ! -e "$work/nested.stopped" ] && grep -q 'reboot: Restarting system' "$C"; then
	ok "nested QEMU ran and ended with the guest's reset (exit 0)"
else fail "nested QEMU: exit $nrc: $(cat "$work/nested.stopped" 2>/dev/null) $(tail -n 3 "$work/nested.err" | tr '\n' ' ') console: $(console_tail)"; fi
if grep -q ' NESTED-FAIL' "$C"; then fail "nested guest: $(grep ' NESTED-FAIL' "$C" | cut -d' ' -f2- | tr '\n' ' ')"; fi
[ "$(marker NESTED-SIZE)" = $PSIZE ] && ok "nested guest sees /dev/vda of $PSIZE bytes" ||
	fail "nested /dev/vda size: '$(marker NESTED-SIZE)', want $PSIZE"
[ "$(marker NESTED-RO)" = 0 ] && ok "nested /dev/vda is writable" || fail "nested /dev/vda ro: '$(marker NESTED-RO)'"
v=$(marker NESTED-SERIAL)
[ "$v" = NVD-F:n1:1 ] && ok "nested /dev/vda serial (GET_ID): $v" || fail "nested /dev/vda serial (GET_ID): '$v', want NVD-F:n1:1"
v=$(marker NESTED-CACHE)
[ "$v" = "write back" ] && ok "nested /dev/vda cache mode: $v (QEMU's NVMe has a volatile write cache)" ||
	fail "nested /dev/vda cache mode: '$v', want 'write back'"
[ "$(word NESTED-READ8M)" = "$want_read8m" ] && ok "nested O_DIRECT read of the host's 1 MiB at 8 MiB" ||
	fail "nested read at 8 MiB: md5 '$(word NESTED-READ8M)', want $want_read8m"
[ "$(word NESTED-READLAST)" = "$want_last" ] && ok "nested O_DIRECT read of the partition's last 4 KiB" ||
	fail "nested read of the last 4 KiB: md5 '$(word NESTED-READLAST)', want $want_last"
has NESTED-OK write && ok "nested O_DIRECT write of 1 MiB at 4 MiB, fsync" || fail "nested write: no 'NESTED-OK write'"
has NESTED-OK write-read && ok "nested O_DIRECT read-back matches" || fail "nested read-back: no 'NESTED-OK write-read'"
has NESTED-OK restart && ok "nested O_DIRECT writes and read-back across nvme-drv's kill -9 and restart: no error" ||
	fail "nested guest across the restart: no 'NESTED-OK restart'"
has NESTED-OK restart-term && ok "nested O_DIRECT writes and read-back across a SIGTERM stop and restart: no error" ||
	fail "nested guest across the SIGTERM restart: no 'NESTED-OK restart-term'"
[ -n "$(at NESTED-END)" ] && ok "nested /init reached its end" || fail "nested /init did not finish: $(console_tail)"

drc=$(cat "$work/drv.rc" 2>/dev/null || echo missing)
[ "$(cat "$work/drv2.rc" 2>/dev/null)" = 0 ] && grep -q 'shut down cleanly' "$work/drv2.err" &&
	ok "second nvme-drv: SIGTERM under the guest's I/O, exit 0, controller shut down cleanly" ||
	fail "second nvme-drv: SIGTERM: exit $(cat "$work/drv2.rc" 2>/dev/null): $(tail -n 3 "$work/drv2.err" | tr '\n' ' ')"
E=$work/drv3.err
[ -e "$work/t-restarted" ] && ok "nvme-drv killed with kill -9 mid-I/O and started again" ||
	fail "nvme-drv was not killed and restarted (no NESTED-KILLME?)"
[ -e "$work/t-restarted2" ] && ok "nvme-drv stopped with SIGTERM mid-I/O and started again" ||
	fail "nvme-drv was not stopped and restarted: NESTED-TERMME at $(at NESTED-TERMME)," \
		"seen at $(cat "$work/t-saw-term" 2>/dev/null), NESTED-END at $(at NESTED-END);" \
		"kill -9 at $(cat "$work/t-killed" 2>/dev/null), successor at $(cat "$work/t-restarted" 2>/dev/null)"
if [ "$drc" = 0 ] && grep -q 'shut down cleanly' "$E"; then ok "restarted nvme-drv: SIGTERM, exit 0, controller shut down cleanly"
else fail "restarted nvme-drv: exit $drc: $(tail -n 3 "$E" | tr '\n' ' ')"; fi
grep -q 'front end connected' "$work/drv.err" && grep -q 'front end connected' "$work/drv2.err" &&
	grep -q 'front end connected' "$E" &&
	ok "QEMU connected to nvme-drv, and again to each successor" || fail "nvme-drv: no 'front end connected' in every log"
cat "$work/drv2.err" "$E" | grep 'left in flight by an earlier server' | sed 's/^/# /'
if cat "$work/drv.err" "$work/drv2.err" "$E" | grep -q -e ': error: ' -e ': warning: '; then
	fail "nvme-drv errors/warnings: $(cat "$work/drv.err" "$work/drv2.err" "$E" | grep -e ': error: ' -e ': warning: ' | head -n 5 | tr '\n' ' ')"
else ok "nvme-drv: no errors or warnings"; fi

# Host side: the pattern is at partition start + 4 MiB, nothing else changed.
if out=$(python3 - "$work/disk.orig" "$work/disk.img" "$work/pattern.bin" $((PSTART + (4 << 20))) $((PSTART + (12 << 20))) $((PSTART + (20 << 20))) <<'PY'
import sys
orig, img, pat = (open(p, "rb").read() for p in sys.argv[1:4])
offs = [int(a) for a in sys.argv[4:]]
bad = []
if len(img) != len(orig):
    bad.append(f"size {len(img)}, was {len(orig)}")
else:
    for off in offs:
        if img[off:off + len(pat)] != pat:
            bad.append(f"the pattern is not at {off}")
    edges = [0] + [x for off in offs for x in (off, off + len(pat))] + [len(orig)]
    for a, b in zip(edges[0::2], edges[1::2]):
        if img[a:b] != orig[a:b]:
            i = next(i for i in range(a, b) if img[i] != orig[i])
            bad.append(f"byte {i} changed outside the written ranges")
print("; ".join(bad))
sys.exit(1 if bad else 0)
PY
); then ok "host check: pattern at partition start + 4, 12 and 20 MiB, every other byte unchanged"
else fail "host check: $out"; fi

t_start=$(cat "$work/t-start" 2>/dev/null) t_ready=$(cat "$work/t-ready" 2>/dev/null)
t_nested=$(cat "$work/t-nested" 2>/dev/null) t_init=$(at NESTED-INIT) t_end=$(at NESTED-END)
echo "# time: total $(secs "$T0" "$EPOCHREALTIME") s = host $(secs "$T0" "$T1") s + outer VM $(secs "$T1" "$T2") s;" \
	"in it: nvme-drv ready $(secs "$t_start" "$t_ready") s, nested QEMU $(secs "$t_ready" "$t_nested") s" \
	"(boot to /init $(secs "$t_ready" "${t_init:-$t_nested}") s, /init $(secs "${t_init:-$t_nested}" "${t_end:-$t_nested}") s," \
	"exit $(secs "${t_end:-$t_nested}" "$t_nested") s)"
exit $failed
