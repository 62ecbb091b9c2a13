#!/bin/bash
# Smoke test of the VM test bed (tests/vm/run). Three boots, ~15 s with a warm
# cache:
#  1. two namespaces (512 B and 4 KiB blocks) on one controller: the function
#     is bound to vfio-pci and has its /dev/vfio/GROUP; the command runs in
#     the caller's working directory; a file written there lands on the host
#     (read-write checkout share); stdout is exactly what the command printed;
#     the command's exit code (7) comes back.
#  2. --no-iommu: the function is not bound to vfio-pci, the command still
#     runs, and a note is printed on stderr.
#  3. --keep-nvme: the kernel driver sees a 4 KiB namespace; data written
#     there is in the image file on the host when the run returns; bind-vfio
#     moves the function to vfio-pci.
# Prints "ok ..." / "FAIL ..." lines; exits 1 if anything failed.
# shellcheck disable=SC2016  # (the guest scripts are single-quoted on purpose)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
top=$(cd "$here/../.." && pwd -P)
run=$here/run

failed=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failed=1; }
check() { # DESCRIPTION COMMAND... : ok if COMMAND succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

# Set-up first, outside every check: on a cold cache this fetches the kernel
# and says so on stderr, which is not what run 1's stderr check is about.
"$run" --prepare

imgs=$(mktemp -d "${TMPDIR:-/tmp}/nvd-smoke.XXXXXX")
# The working directory for the guest command: inside the checkout, so it is
# on the read-write share.
work=$(mktemp -d "$top/.vm-smoke.XXXXXX")
trap 'rm -rf "$imgs" "$work"' EXIT
truncate -s 64M "$imgs/a.img" "$imgs/b.img"

# --- 1. vfio-pci binding, working directory, marker, exit code -------------

cd "$work"
set +e
out=$("$run" --nvme serial=SMOKE1 --ns file="$imgs/a.img" --ns file="$imgs/b.img,lbs=4096" -- sh -c '
	d=/sys/bus/pci/devices/0000:00:04.0
	echo "class=$(cat $d/class)"
	echo "driver=$(basename "$(readlink $d/driver)")"
	g=$(basename "$(readlink $d/iommu_group)")
	if [ -c "/dev/vfio/$g" ]; then echo "vfio-group=present"; else echo "vfio-group=missing ($g)"; fi
	echo "cwd=$(pwd -P)"
	echo "in-vm=$NVD_IN_VM"
	echo "written in the guest" > marker
	exit 7' 2>"$imgs/stderr1")
rc=$?
set -e
expected="class=0x010802
driver=vfio-pci
vfio-group=present
cwd=$work
in-vm=1"
check "run 1: exit code 7 propagates (got $rc)" test "$rc" = 7
check "run 1: NVMe function at 0000:00:04.0" grep -qx 'class=0x010802' <<<"$out"
check "run 1: bound to vfio-pci" grep -qx 'driver=vfio-pci' <<<"$out"
check "run 1: /dev/vfio/GROUP exists" grep -qx 'vfio-group=present' <<<"$out"
check "run 1: same working directory" grep -qx "cwd=$work" <<<"$out"
check "run 1: stdout is exactly the command's output" test "$out" = "$expected"
check "run 1: marker written through the checkout share" \
	grep -qx 'written in the guest' "$work/marker"
# (A boot retried after a TCG flake leaves a note: not the command's.)
check "run 1: nothing on stderr" test -z "$(grep -v 'booting again' "$imgs/stderr1")"
if ((failed)); then
	echo "--- run 1 stdout:"; echo "$out"
	echo "--- run 1 stderr:"; cat "$imgs/stderr1"
fi

# --- 2. --no-iommu ------------------------------------------------------------

set +e
out=$("$run" --no-iommu --nvme serial=SMOKE2 --ns file="$imgs/a.img" -- sh -c '
	d=/sys/bus/pci/devices/0000:00:04.0
	if [ -e $d/driver ]; then
		echo "driver=$(basename "$(readlink $d/driver)")"
	else
		echo "driver=none"
	fi' 2>"$imgs/stderr2")
rc=$?
set -e
check "run 2 (--no-iommu): command ran (exit $rc)" test "$rc" = 0
check "run 2 (--no-iommu): not bound to vfio-pci ($out)" test "$out" = driver=none
check "run 2 (--no-iommu): note on stderr" grep -q 'no vIOMMU' "$imgs/stderr2"

# --- 3. --keep-nvme, data reaches the image, bind-vfio -------------------------

# 4 KiB of 'Z' at LBA 2 of the 4Kn namespace = byte offset 8192 of b.img.
set +e
out=$("$run" --keep-nvme --nvme serial=SMOKE3 --ns file="$imgs/a.img" --ns file="$imgs/b.img,lbs=4096" -- sh -c '
	dev=$(readlink -f /dev/disk/by-path/pci-0000:00:04.0-nvme-2)
	echo "lbs=$(cat /sys/block/${dev#/dev/}/queue/logical_block_size)"
	head -c 4096 /dev/zero | tr "\0" Z | dd of=$dev bs=4096 seek=2 oflag=direct status=none
	"$NVD_VM_DIR/bind-vfio" 0000:00:04.0' 2>"$imgs/stderr3")
rc=$?
set -e
check "run 3 (--keep-nvme): exit code 0 (got $rc)" test "$rc" = 0
check "run 3 (--keep-nvme): namespace 2 has 4096-byte blocks" grep -qx 'lbs=4096' <<<"$out"
check "run 3 (--keep-nvme): data written in the guest is in b.img" \
	test "$(dd if="$imgs/b.img" bs=4096 skip=2 count=1 status=none | tr -d Z | wc -c)" = 0
check "run 3 (--keep-nvme): bind-vfio moved the function to vfio-pci" \
	grep -q '^0000:00:04.0 vfio-pci /dev/vfio/' <<<"$out"
if ((failed)); then
	echo "--- run 3 stdout:"; echo "$out"
	echo "--- run 3 stderr:"; cat "$imgs/stderr3"
fi

if ((failed)); then
	echo "FAIL t-boot"
	exit 1
fi
echo "ok   t-boot"
