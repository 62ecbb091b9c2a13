#!/bin/bash
# Guest side of tests/vm/run: runs as root inside the VM, chrooted into the
# host's root (read-only 9p), started by the initramfs /init.
#
# It prepares the devices (VFIO or the kernel nvme driver), then runs the
# caller's command in the caller's working directory with its output going to
# the host through two virtio-serial ports, and records the exit code.
#
# /run/nvd (the per-run directory of the host) holds:
#   config   written by the host: variables and the command (bash syntax)
#   started  written here just before the command starts
#   rc       written here: the command's exit code
# /init adds "end" after this script returns (the end marker).

set -uo pipefail   # no -e: every failure here is reported, then we go on or stop

# shellcheck source=/dev/null
. /run/nvd/config

# Output ports. virtio-serial ports are plain character devices (no tty
# line discipline), so bytes arrive on the host unchanged. The host stores
# each in a regular file and streams it to its own stdout/stderr.
# (Builtins only, here and below: every fork+exec costs under TCG.)
out='' err=''
for p in /sys/class/virtio-ports/*; do
	read -r name < "$p/name"
	case $name in
		nvd.out) out=/dev/${p##*/} ;;
		nvd.err) err=/dev/${p##*/} ;;
	esac
done
if [[ -z $out || -z $err ]]; then
	echo "vm/run: guest: virtio-serial ports nvd.out/nvd.err not found" > /dev/console
	exit 125
fi
if ((NVD_MERGE)); then
	exec >"$out" 2>&1 </dev/null
else
	exec >"$out" 2>"$err" </dev/null
fi

note() { echo "vm/run: guest: $*" >&2; }

export NVD_IN_VM=1 NVD_KVER NVD_KMOD_DIR NVD_VM_DIR
export HOME=/root TERM=dumb
PATH=$NVD_PATH
for d in /usr/local/sbin /usr/sbin /sbin; do
	[[ :$PATH: == *:$d:* ]] || PATH+=:$d
done
export PATH
for kv in "${NVD_ENV[@]}"; do
	export "${kv?}"
done

# NVMe functions: PCI class 0x010802.
bdfs=()
for d in /sys/bus/pci/devices/*; do
	read -r class < "$d/class"
	[[ $class == 0x010802 ]] && bdfs+=("${d##*/}")
done

if ((NVD_KEEP_NVME)); then
	# Kernel driver mode (benchmarks against the in-kernel driver). Wait for
	# the namespaces: nvme probes and scans asynchronously, and the command
	# should find /dev/nvmeXnY ready.
	"$NVD_VM_DIR/modprobe" nvme || note "modprobe nvme failed"
	for ((i = 0; i < 200; i++)); do
		shopt -s nullglob
		ns=(/sys/block/nvme*n*)
		shopt -u nullglob
		((${#ns[@]} >= NVD_NAMESPACES)) && break
		sleep 0.05
	done
	((${#ns[@]} >= NVD_NAMESPACES)) ||
		note "only ${#ns[@]} of $NVD_NAMESPACES NVMe namespaces appeared"
	# Controllers and namespaces are probed in parallel, so nvmeXnY names
	# change from boot to boot. Stable names, as udev would make them:
	# /dev/disk/by-path/pci-BDF-nvme-NSID.
	mkdir -p /dev/disk/by-path
	for b in "${ns[@]}"; do
		[[ -r $b/device/address && -r $b/nsid ]] || continue
		read -r addr < "$b/device/address"
		read -r nsid < "$b/nsid"
		ln -sfn "../../${b##*/}" "/dev/disk/by-path/pci-$addr-nvme-$nsid"
	done
else
	# VFIO mode. /init has loaded the vfio modules from the initramfs.
	if ((${#bdfs[@]})); then
		if ! "$NVD_VM_DIR/bind-vfio" --quiet "${bdfs[@]}"; then
			if ((NVD_IOMMU)); then
				note "binding NVMe functions to vfio-pci failed"
			else
				note "no vIOMMU (--no-iommu): NVMe functions are not bound to vfio-pci; running the command anyway"
			fi
		fi
	fi
fi

cd "$NVD_CWD" || { note "cannot enter working directory $NVD_CWD"; exit 125; }

: > /run/nvd/started   # from here on, the host will not boot again
"${NVD_CMD[@]}"
rc=$?

# The command may have left background processes that still hold the ports;
# nothing to do about them: the VM stops right after this.
echo "$rc" > /run/nvd/rc
exit 0
