#!/usr/bin/env bash
# The hardware driver on QEMU's NVMe controllers (issue: "The hardware driver").
# One boot with two controllers:
#   NVD-A  ns1 64 MiB GPT by sgdisk (alpha, beta)   ns2 32 MiB MBR by sfdisk
#          ns3 32 MiB 4Kn GPT (gamma)               ns4 16 MiB, no table
#   NVD-B  mdts=1 (8 KiB per command)  ns1 32 MiB GPT whose primary header is corrupt
# In the guest: --list, nvme-drv-perf verify with SGL / --nosgl, MSI-X /
# --nomsix / --nomsix --nomsi, shadow doorbells and --no-shadow-doorbells,
# whole namespaces and partitions by every kind of name, and bad input. On the host afterwards: the pattern is where it was
# written and every other byte of every image is unchanged.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork driver

U1=11111111-2222-3333-4444-555555555501
U2=11111111-2222-3333-4444-555555555502
U3=33333333-4444-5555-6666-777777777701
U4=44444444-5555-6666-7777-888888888801

mkimg "$work/a1.img" 64
sgdisk -Z -U AAAAAAAA-0000-0000-0000-000000000001 \
	-n 1:2048:+16M -c 1:alpha -u 1:$U1 -n 2:0:+16M -c 2:beta -u 2:$U2 "$work/a1.img" >/dev/null
mkimg "$work/a2.img" 32
sfdisk -q "$work/a2.img" <<'MBR'
label: dos
label-id: 0x1234abcd
start=2048, size=8192, type=83
start=10240, size=8192, type=83
start=18432, size=40960, type=5
start=20480, size=8192, type=83
start=30720, size=8192, type=83
MBR
mkimg "$work/a3.img" 32
have_4kn=0
if loop=$(losetup -f --show -b 4096 "$work/a3.img" 2>/dev/null); then
	sgdisk -n 1:256:+4M -c 1:gamma -u 1:$U3 "$loop" >/dev/null && have_4kn=1
	losetup -d "$loop"
fi
mkimg "$work/a4.img" 16
mkimg "$work/b1.img" 32
sgdisk -Z -n 1:2048:+8M -c 1:delta -u 1:$U4 "$work/b1.img" >/dev/null
# Break the primary GPT header's CRC: the backup must be used.
printf '\x00\x00\x00\x00' | dd of="$work/b1.img" bs=1 seek=$((512 + 16)) conv=notrunc status=none
truncate -s 8M "$work/b2.img"
for f in a1 a2 a3 a4 b1; do cp "$work/$f.img" "$work/$f.orig"; done

D=$build/src/daemon/nvme-drv
P=$build/tools/nvme-drv-perf
# Data threads under ASan/UBSan where that build exists.
PT=$P
[ -x "$top/build-asan/tools/nvme-drv-perf" ] && PT=$top/build-asan/tools/nvme-drv-perf
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
step list $D --list
step verify-part-uuid-sgl-msix $P --device $U1 --rw verify --bs 64k --qd 8
step verify-partlabel-nosgl $P --device partlabel:beta --rw verify --bs 16k --qd 4 --nosgl
step verify-ns-intx $P --device NVD-A:n4 --rw verify --bs 8k --qd 4 --nomsix --nomsi
step verify-ns-nomsix $P --device NVD-A:n4 --rw verify --bs 4k --qd 16 --nomsix --seed 2
step verify-mbr-logical $P --device 1234ABCD-05 --rw verify --bs 4k --qd 2
step verify-mbr-by-number $P --device NVD-A:n2:2 --rw verify --bs 32k --qd 2 --nosgl
step verify-4kn-ns-part $P --device partuuid:$U3 --rw verify --bs 16k --qd 4
step verify-mdts-split $P --device NVD-B:n1:1 --rw verify --bs 256k --qd 4
step verify-mdts-split-prp $P --device $U4 --rw verify --bs 128k --qd 2 --nosgl --seed 3
step verify-shadow-db $P --device NVD-A:n4 --rw verify --bs 4k --qd 32 --seed 4
step verify-no-shadow-db $P --device NVD-A:n4 --rw verify --bs 4k --qd 32 --seed 5 --no-shadow-doorbells
step list-no-shadow-db $D --list --no-shadow-doorbells
step verify-no-polled $P --device NVD-A:n4 --rw verify --bs 4k --qd 32 --seed 6 --no-polled-queues
step verify-polled-qd1 $P --device NVD-A:n4 --rw verify --bs 4k --qd 1 --count 2000 --seed 7
step list-polled $D --list --polled-queues
step verify-threads $PT --device NVD-A:n4 --rw verify --bs 4k --qd 16 --threads 2 --seed 8
step verify-threads-3 $PT --device $U1 --rw verify --bs 16k --qd 4 --threads 3 --seed 9 --no-polled-queues
step read-threads $PT --device NVD-A:n4 --rw randread --qd 8 --threads 2 --time 3
step bad-coalesce $D --coalesce-us 10001 --list
step bad-cpus $D --cpus 0,0 --list
step bad-cpus-threads $D --cpus 0,1 --threads 2 --list
step bad-threads-queues $P --device NVD-A:n4 --threads 2 --queues 1 --count 1
step bad-threads-vector $P --device NVD-A:n4 --threads 2 --nomsix --count 1
step bad-option $D --bogus
step bad-option-arg $D --pci
step bad-pci-syntax $D --pci zz:1 --list
step bad-pci-missing $D --pci 0000:00:1f.7 --list
step bad-pci-not-nvme $D --pci 0000:00:00.0 --list
step bad-device-unknown $P --device NOSUCH:n1 --count 1
step bad-device-syntax $P --device NVD-A:n0 --count 1
step bad-device-uuid $P --device 99999999-9999-9999-9999-999999999999 --count 1
step bad-rw $P --device NVD-A:n4 --rw sideways
step bad-bs $P --device NVD-A:n4 --bs 1000
step bad-bs-4kn $P --device NVD-A:n3 --bs 512 --count 1
$D -v 2>"\$W/sigterm.err" & pid=\$!
sleep 3; kill -TERM \$pid; wait \$pid; echo \$? > "\$W/sigterm.rc"
step perf-readonly-ok $P --device NVD-A:n4 --rw randread --qd 4 --count 200
echo 0000:00:05.0 > /sys/bus/pci/drivers/vfio-pci/unbind
step unbound-named $D --pci 0000:00:05.0 --list
echo 0000:00:04.0 > /sys/bus/pci/drivers/vfio-pci/unbind
step unbound-all $D --list
GUEST

"$run" --timeout 400 --nvme serial=NVD-A --ns file="$work/a1.img" --ns file="$work/a2.img" \
	--ns file="$work/a3.img,lbs=4096" --ns file="$work/a4.img" \
	--nvme serial=NVD-B,mdts=1 --ns file="$work/b1.img" --ns file="$work/b2.img,ms=8" -- sh "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

# --list reports exactly what the images hold.
L=$work/list.out
expect_ok list
want_lines=(
	'controller 0000:00:04.0 serial="NVD-A" model="QEMU NVMe Ctrl"'
	'controller 0000:00:05.0 serial="NVD-B" model="QEMU NVMe Ctrl"'
	' mdts=8192 '
	'  namespace NVD-A:n1 size=67108864 lba=512 readonly=no table=gpt'
	"    partition $U1 label=\"alpha\" name=NVD-A:n1:1 first-lba=2048 size=16777216"
	"    partition $U2 label=\"beta\" name=NVD-A:n1:2 first-lba=34816 size=16777216"
	'  namespace NVD-A:n2 size=33554432 lba=512 readonly=no table=mbr'
	'    partition 1234ABCD-01 label="" name=NVD-A:n2:1 first-lba=2048 size=4194304'
	'    partition 1234ABCD-02 label="" name=NVD-A:n2:2 first-lba=10240 size=4194304'
	'    partition 1234ABCD-05 label="" name=NVD-A:n2:5 first-lba=20480 size=4194304'
	'    partition 1234ABCD-06 label="" name=NVD-A:n2:6 first-lba=30720 size=4194304'
	'  namespace NVD-A:n4 size=16777216 lba=512 readonly=no table=none'
	'  namespace NVD-B:n1 size=33554432 lba=512 readonly=no table=gpt'
	"    partition $U4 label=\"delta\" name=NVD-B:n1:1 first-lba=2048 size=8388608"
	'  namespace NVD-B:n2 skipped="formatted with 8 bytes of metadata per block (unsupported)"'
)
if [ $have_4kn = 1 ]; then
	want_lines+=('  namespace NVD-A:n3 size=33554432 lba=4096 readonly=no table=gpt'
		"    partition $U3 label=\"gamma\" name=NVD-A:n3:1 first-lba=256 size=4194304")
fi
for l in "${want_lines[@]}"; do
	if grep -qF -- "$l" "$L"; then ok "list shows: ${l# *}"; else fail "list lacks: $l"; fi
done
n_ctrl=$(grep -c '^controller ' "$L"); n_ns=$(grep -c '^  namespace ' "$L"); n_part=$(grep -c '^    partition ' "$L")
exp_part=$((2 + 4 + 1 + have_4kn))
if [ "$n_ctrl/$n_ns/$n_part" = "2/6/$exp_part" ]; then ok "list counts: 2 controllers, 6 namespaces, $exp_part partitions"
else fail "list counts: $n_ctrl controllers, $n_ns namespaces, $n_part partitions (want 2/6/$exp_part)"; cat "$L"; fi
if grep -q "primary GPT is corrupt; using the backup" "$work/list.err"; then ok "corrupt primary GPT reported"; else fail "no warning about the corrupt primary GPT"; fi
grep -q 'mdts=8192 ' <(grep NVD-B "$L") && ok "NVD-B mdts=1 reported as 8192 bytes" || fail "NVD-B mdts not 8192"

for s in verify-part-uuid-sgl-msix verify-partlabel-nosgl verify-ns-intx verify-ns-nomsix \
	 verify-mbr-logical verify-mbr-by-number verify-mdts-split verify-mdts-split-prp; do
	expect_ok $s
done
if [ $have_4kn = 1 ]; then expect_ok verify-4kn-ns-part; else skip "verify-4kn-ns-part: no loop device on this host to make a 4Kn GPT with sgdisk"; fi
grep -q ' SGL MSI-X' "$work/verify-part-uuid-sgl-msix.out" && ok "default run used SGL and MSI-X" || fail "default run did not use SGL+MSI-X: $(head -1 "$work/verify-part-uuid-sgl-msix.out")"
grep -q ' PRP ' "$work/verify-partlabel-nosgl.out" && ok "--nosgl used PRPs" || fail "--nosgl did not use PRPs"
grep -q ' INTx' "$work/verify-ns-intx.out" && ok "--nomsix --nomsi fell back to INTx" || fail "--nomsix --nomsi: $(head -1 "$work/verify-ns-intx.out")"
grep -q ' INTx' "$work/verify-ns-nomsix.out" && ok "--nomsix fell back to INTx (QEMU's NVMe has no MSI)" || fail "--nomsix: $(head -1 "$work/verify-ns-nomsix.out")"

# Shadow doorbells (issue 11): QEMU 7.2's NVMe offers Doorbell Buffer Config;
# they are used unless --no-shadow-doorbells, and data verifies either way.
for c in NVD-A NVD-B; do
	grep "serial=\"$c\"" "$L" | grep -q ' shadow-doorbells=yes ' && ok "list: $c uses shadow doorbells" ||
		fail "list: $c shadow doorbells: $(grep "serial=\"$c\"" "$L")"
done
expect_ok list-no-shadow-db
[ "$(grep -c ' shadow-doorbells=off ' "$work/list-no-shadow-db.out")" = 2 ] &&
	ok "list --no-shadow-doorbells: off on both" || fail "list --no-shadow-doorbells: $(grep '^controller' "$work/list-no-shadow-db.out")"
grep -q '0000:00:04.0: NVD-A .*, shadow doorbells$' "$work/sigterm.err" && ok "bring-up line says shadow doorbells" ||
	fail "bring-up line: $(grep 'NVD-A (' "$work/sigterm.err")"
expect_ok verify-shadow-db
expect_ok verify-no-shadow-db
S=$work/verify-shadow-db.out N=$work/verify-no-shadow-db.out
head -1 "$S" | grep -q ' shadow-doorbells$' && ok "perf used shadow doorbells" || fail "perf: $(head -1 "$S")"
head -1 "$N" | grep -q ' register-doorbells$' && ok "perf --no-shadow-doorbells used registers" || fail "perf --no-shadow-doorbells: $(head -1 "$N")"
# Without them every update is a register write. With them, QEMU 7.2 asks
# for the register whenever it has caught up, which at this load is nearly
# always: how many stay in memory is reported, not judged.
if [ "$(grep -c '^doorbells: sq-mmio=[0-9]* sq-shadow-only=0 cq-mmio=[0-9]* cq-shadow-only=0 ' "$N")" = 2 ]; then
	ok "--no-shadow-doorbells: no update left in memory"
else fail "--no-shadow-doorbells: $(grep '^doorbells' "$N" | tr '\n' ' ')"; fi
# Polled twin queue pairs (IEN=0): nvme-drv-perf's default, nvme-drv's
# with --polled-queues; data verifies with and without them.
expect_ok verify-no-polled
expect_ok verify-polled-qd1
head -1 "$S" | grep -q ' polled-queues=2 ' && ok "perf used polled twins (2)" || fail "perf twins: $(head -1 "$S")"
grep -q '^read: ios=2000 .* lat_us: min=' "$work/verify-polled-qd1.out" && ok "perf reports latencies" ||
	fail "perf latencies: $(grep '^read' "$work/verify-polled-qd1.out")"
head -1 "$work/verify-no-polled.out" | grep -q ' polled-queues=0 ' && ok "perf --no-polled-queues: none" ||
	fail "perf --no-polled-queues: $(head -1 "$work/verify-no-polled.out")"
expect_ok list-polled
[ "$(grep -c ' queues=2 polled-queues=2 ' "$work/list-polled.out")" = 2 ] && ok "list --polled-queues: 2 twins on both" ||
	fail "list --polled-queues: $(grep '^controller' "$work/list-polled.out")"
[ "$(grep -c ' polled-queues=0 ' "$L")" = 2 ] && ok "list: no twins by default" || fail "list: $(grep '^controller' "$L")"
echo "# polled twins, verify QD1: $(grep -m1 '^polling' "$work/verify-polled-qd1.out")"
# Data threads (--threads): each its own queue pairs, vectors and loop;
# the periodic check runs with them parked (a 3 s run has two).
for n in verify-threads verify-threads-3 read-threads; do expect_ok $n; done
head -1 "$work/verify-threads.out" | grep -q ' queues=2 .* threads=2$' && grep -q '^verify: OK' "$work/verify-threads.out" &&
	ok "perf --threads 2: two queues, verified" || fail "perf --threads 2: $(head -1 "$work/verify-threads.out"; tail -1 "$work/verify-threads.out")"
head -1 "$work/verify-threads-3.out" | grep -q ' queues=3 .* threads=3$' && grep -q '^verify: OK' "$work/verify-threads-3.out" &&
	ok "perf --threads 3: three queues, verified" || fail "perf --threads 3: $(head -1 "$work/verify-threads-3.out")"
grep -q '^randread: ios=[1-9].* lat_us: min=' "$work/read-threads.out" && ok "perf --threads 2 randread for 3 s, with latencies" ||
	fail "perf --threads 2 randread: $(cat "$work/read-threads.out" | tr '\n' ' ')"
echo "# --threads 2 randread QD8 each: $(grep -m1 '^randread' "$work/read-threads.out" | cut -d' ' -f2-4)"
echo "# shadow doorbells, verify QD32 write phase: $(grep -m1 '^doorbells' "$S" | cut -d' ' -f2-)"
echo "# register doorbells, verify QD32 write phase: $(grep -m1 '^doorbells' "$N" | cut -d' ' -f2-)"

expect_error bad-option "--bogus"
expect_error bad-coalesce "--coalesce-us"
expect_error bad-cpus "--cpus"
expect_error bad-cpus-threads "give one"
expect_error bad-threads-queues "--queues 1"
expect_error bad-threads-vector "shares its interrupt vector"
expect_error bad-option-arg "--pci"
expect_error bad-pci-syntax "zz:1"
expect_error bad-pci-missing "0000:00:1f.7"
expect_error bad-pci-not-nvme "not an NVMe controller"
expect_error bad-device-unknown "NOSUCH:n1"
expect_error bad-device-syntax "NVD-A:n0"
expect_error bad-device-uuid "99999999-9999-9999-9999-999999999999"
expect_error bad-rw "sideways"
expect_error bad-bs "1000"
expect_error bad-bs-4kn "4096"
if [ "$(cat "$work/sigterm.rc")" = 0 ] && grep -q '0000:00:04.0: shut down cleanly' "$work/sigterm.err" &&
   grep -q '0000:00:05.0: shut down cleanly' "$work/sigterm.err"; then ok "SIGTERM: exit 0, both controllers shut down cleanly"
else fail "SIGTERM: exit $(cat "$work/sigterm.rc"): $(tail -3 "$work/sigterm.err" | tr '\n' ' ')"; fi
expect_ok perf-readonly-ok
grep -q '^randread: ios=200 ' "$work/perf-readonly-ok.out" && ok "perf --count 200 ran 200 I/Os" || fail "perf --count: $(cat "$work/perf-readonly-ok.out")"
expect_error unbound-named "not vfio-pci"
expect_error unbound-all "no NVMe controller is bound to vfio-pci"

# Host side: the pattern is where it was written, nothing else changed.
ic=$here/imgcheck.py
check_img() { # NAME IMG LBS RANGES...
	local name=$1 img=$2 lbs=$3; shift 3
	local args=(); for r in "$@"; do args+=(--pattern "$r"); done
	if out=$(python3 "$ic" "$work/$img.orig" "$work/$img.img" "$lbs" "${args[@]}"); then ok "host check $name"
	else fail "host check $name: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
}
check_img "a1: alpha and beta hold the pattern, GPT and the rest unchanged" a1 512 2048:32768 34816:32768
check_img "a2: MBR partitions 2 and 5 written, EBRs and the rest unchanged" a2 512 10240:8192 20480:8192
[ $have_4kn = 1 ] && check_img "a3: 4Kn partition gamma written, rest unchanged" a3 4096 256:1024
check_img "a4: whole namespace written" a4 512 0:32768
check_img "b1: partition delta written, rest (incl. the broken primary GPT) unchanged" b1 512 2048:16384
exit $failed
