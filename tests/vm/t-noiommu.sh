#!/usr/bin/env bash
# Without an IOMMU, vfio-pci cannot take the controller, and Debian's kernels
# have no VFIO no-IOMMU mode: nvme-drv must say so in one line and exit 1.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork noiommu
truncate -s 16M "$work/a.img"
D=$build/src/daemon/nvme-drv
cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
step noiommu-scan $D --list
step noiommu-named $D --pci 0000:00:04.0 --list
GUEST
"$run" --timeout 200 --no-iommu --nvme serial=NOIOMMU --ns file="$work/a.img" -- sh "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }
expect_error noiommu-scan "IOMMU is required"
expect_error noiommu-named "IOMMU is required"
exit $failed
