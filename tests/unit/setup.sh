#!/bin/bash
# nvme-drv-setup against a fake sysfs tree (NVD_SETUP_SYSFS): what it
# refuses before writing anything (a namespace in use, also behind native
# multipath; an IOMMU group shared with another driver; no group), and
# what status reports. The binding itself runs in the VM (t-service.sh).
#   setup.sh NVME_DRV_SETUP
SETUP=$1
failed=0 n=0
sys=$(mktemp -d /tmp/nvd-setup-test.XXXXXX)
trap 'rm -rf "$sys"' EXIT

# fn BDF CLASS DRIVER GROUP
fn() {
	local d=$sys/devices/pci0000:00/$1
	mkdir -p "$d" "$sys/bus/pci/devices" "$sys/bus/pci/drivers/$3" "$sys/kernel/iommu_groups/$4/devices"
	echo "$2" > "$d/class"
	ln -s "$d" "$sys/bus/pci/devices/$1"
	[ "$3" = none ] || ln -s "../../../bus/pci/drivers/$3" "$d/driver"
	[ "$4" = none ] || { ln -s "../../../kernel/iommu_groups/$4" "$d/iommu_group"; ln -s "$d" "$sys/kernel/iommu_groups/$4/devices/$1"; }
}
fn 0000:01:00.0 0x010802 nvme 7
fn 0000:02:00.0 0x010802 nvme 8
fn 0000:02:00.1 0x020000 e1000e 8
fn 0000:03:00.0 0x010802 nvme none
fn 0000:04:00.0 0x010802 vfio-pci 9
# 01:00.0 holds nvme0 whose namespace 1 (a multipath head) is an LVM PV.
mkdir -p "$sys/devices/pci0000:00/0000:01:00.0/nvme/nvme0/nvme0c0n1" "$sys/class/block/nvme0n1/holders/dm-0"
rmdir "$sys/bus/pci/drivers/vfio-pci" 2>/dev/null; mkdir -p "$sys/bus/pci/drivers/vfio-pci"

expect() { # EXIT "STDERR-or-STDOUT substring" ARGS...
	local want_rc=$1 want=$2 out rc
	shift 2
	n=$((n + 1))
	out=$(NVD_SETUP_SYSFS=$sys "$SETUP" "$@" 2>&1)
	rc=$?
	if [ "$rc" != "$want_rc" ] || ! printf '%s\n' "$out" | grep -qF -- "$want"; then
		echo "FAIL: $*: exit $rc (wanted $want_rc)"; echo "$out" | sed 's/^/  /'
		echo "  wanted: $want"; failed=$((failed + 1))
	fi
}
expect 1 "nvme-drv-setup: error: 0000:01:00.0: in use, not bound: /dev/nvme0n1: held by dm-0 (--force to bind anyway)" bind 01:00.0
expect 1 "nvme-drv-setup: error: 0000:02:00.0: IOMMU group 8 also holds 0000:02:00.1(e1000e): VFIO needs the whole group" bind 0000:02:00.0
expect 1 "nvme-drv-setup: error: 0000:03:00.0: in no IOMMU group: enable the IOMMU" bind 03:00.0
expect 1 "nvme-drv-setup: error: 0000:02:00.1: not an NVMe function (class 0x020000)" bind 02:00.1
expect 0 "0000:04:00.0 vfio-pci (already)" bind 04:00.0
expect 0 "0000:02:00.0 driver=nvme iommu-group=8 group-shares=0000:02:00.1(e1000e)" status
expect 0 "0000:04:00.0 driver=vfio-pci iommu-group=9 vfio=/dev/vfio/9" status
expect 0 "0000:03:00.0 driver=nvme iommu-group=none" status
expect 1 "nvme-drv-setup: error: bind: give the functions (BDF...) or --all" bind
expect 1 "nvme-drv-setup: error: unknown command 'frob' (see --help)" frob
echo "setup: $n checks, $failed failed"
[ "$failed" = 0 ]
