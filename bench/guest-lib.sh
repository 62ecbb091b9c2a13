# bench/guest-lib.sh: helpers for the benchmark scripts' guest side (sourced
# inside a tests/vm/run guest by the scripts that bench/lib.sh writes).
# Needs: W (the work directory, shared with the host), BUILD, TOP, T (seconds
# per point), DRV_ARGS (extra nvme-drv / nvme-drv-perf options).
#
# Every measured run leaves two files in $W/r/PATH/POINT/RUN.*:
#   .out (or .out.1 .out.2 ... for several clients): the tool's own output
#        (fio JSON, nvme-drv-io / nvme-drv-perf lines, spdk_nvme_perf text)
#   .meta: KEY=VALUE lines: the server's CPU time in ns and its timeslices
#        (sum of /proc/PID/task/*/schedstat fields 1 and 3; 0 without a
#        server), its voluntary context switches, the whole guest's busy
#        and total CPU ticks (/proc/stat "cpu" line), USER_HZ, wall time.
#        With DEV_CTL (the server's --svr socket): dev_cmds, dev_us,
#        dev_wall_ns: the commands its controllers completed, their time
#        at the device (nvme-drv-ctl stats), and the time between readings.
#   .host: written on the host by bench/hostcpu.py (QEMU's threads' CPU
#        time over the same point: vCPUs, device emulation, the rest).
# bench/report.py turns them into tables on the host.

BDF=${BDF:-0000:00:04.0}
IO=$BUILD/tools/nvme-drv-io
PERF=$BUILD/tools/nvme-drv-perf
DRV=$BUILD/src/daemon/nvme-drv
say() { echo "bench: $*" >&2; }

# Server counters, summed over its threads: "ns slices voluntary-switches".
srv_snap() { # PID (0: none)
	if [ "$1" = 0 ] || [ ! -d /proc/$1 ]; then echo "0 0 0"; return; fi
	local ns=0 sl=0 vcs=0 a b c t k v
	for t in /proc/$1/task/*; do
		read -r a b c < "$t/schedstat" 2>/dev/null || continue
		ns=$((ns + a)); sl=$((sl + c))
		# bash alone (no awk per thread): cheap enough not to blur the window
		while read -r k v; do
			[ "$k" = voluntary_ctxt_switches: ] && vcs=$((vcs + v))
		done < "$t/status" 2>/dev/null
	done
	echo "$ns $sl $vcs"
}
# Whole guest: "busy total" ticks (busy = user nice system irq softirq steal).
sys_snap() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
now_ns() { date +%s%N; }

write_meta() { # FILE PID-SNAP0 PID-SNAP1 SYS0 SYS1 T0 T1 [KEY=VALUE...]
	local f=$1 a0 b0 c0 a1 b1 c1 s0 u0 s1 u1
	read -r a0 b0 c0 <<<"$2"; read -r a1 b1 c1 <<<"$3"
	read -r s0 u0 <<<"$4"; read -r s1 u1 <<<"$5"
	{
		echo "srv_ns=$((a1 - a0))"; echo "srv_slices=$((b1 - b0))"; echo "srv_vcs=$((c1 - c0))"
		echo "sys_busy=$((s1 - s0))"; echo "sys_total=$((u1 - u0))"; echo "hz=$(getconf CLK_TCK)"
		echo "wall_ns=$(($7 - $6))"
		shift 7
		for kv in "$@" ${MEASURE_META:-}; do echo "$kv"; done
	} > "$f"
}

# An nvme-drv server's controllers, summed: "commands device-us time-ns"
# (nvme-drv-ctl stats on DEV_CTL, its --svr socket), or nothing.
dev_snap() {
	[ -n "${DEV_CTL:-}" ] && [ -S "$DEV_CTL" ] || return 0
	"$BUILD/tools/nvme-drv-ctl" --svr "$DEV_CTL" stats 2>/dev/null | awk -v t="$(now_ns)" '
		/^controller / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		                 c += v["commands"]; u += v["device-us"]; seen = 1 }
		END { if (seen) print c + 0, u + 0, t }'
}

# measure PATH POINT RUN PID CMD...: run CMD (through eval, with $O the
# output prefix: it writes $O.out or $O.out.N) and record the counters.
# With DEV_CTL set, also the server's commands and their time at the device
# (read just outside the window: the ratios hold, the window is ~2 % wider).
measure() {
	local path=$1 point=$2 run=$3 pid=$4 p0 p1 s0 s1 t0 t1 d0 d1 c0 u0 n0 c1 u1 n1
	shift 4
	O=$W/r/$path/$point/$run
	mkdir -p "${O%/*}"
	say "$path $point run $run"
	d0=$(dev_snap)
	# The wall-clock window encloses the counters' (for idle CPU shares).
	# The marks (on stderr) tell bench/hostcpu.py on the host when to read
	# QEMU's threads.
	echo "bench-mark: begin $path $point $run" >&2
	t0=$(now_ns); p0=$(srv_snap "$pid"); s0=$(sys_snap)
	eval "$*"
	s1=$(sys_snap); p1=$(srv_snap "$pid"); t1=$(now_ns)
	echo "bench-mark: end $path $point $run" >&2
	d1=$(dev_snap)
	if [ -n "$d0" ] && [ -n "$d1" ]; then
		read -r c0 u0 n0 <<<"$d0"; read -r c1 u1 n1 <<<"$d1"
		set -- "dev_cmds=$((c1 - c0))" "dev_us=$((u1 - u0))" "dev_wall_ns=$((n1 - n0))"
	else
		set --
	fi
	write_meta "$O.meta" "$p0" "$p1" "$s0" "$s1" "$t0" "$t1" "$@"
}

# idle PATH RUN PID SECONDS: the server's counters while nothing runs.
idle() { measure "$1" idle "$2" "$3" sleep "$4"; }

# The load generators, run by measure (they write to $O.out*).
fio_run() { # DEV RW BS QD [ENGINE-ARGS...]  fio with JSON output (clat percentiles)
	local dev=$1 rw=$2 bs=$3 qd=$4
	shift 4
	[ $# -gt 0 ] || set -- --ioengine=libaio
	fio --name=b --filename="$dev" --direct=1 --rw="$rw" --bs="$bs" --iodepth="$qd" "$@" \
		--time_based --runtime="$T" --output-format=json --output="$O.out" 2> "$O.err"
}
io_run() { # SOCKET RW BS QD [N]: nvme-drv-io; N clients at once on SOCKET with %i = 1..N
	local n=${5:-1} i pids=
	for i in $(seq "$n"); do
		timeout $((T + 60)) "$IO" ${IO_ARGS:-} --socket "$(echo "$1" | sed "s/%i/$i/")" \
			--rw "$2" --bs "$3" --qd "$4" --time "$T" > "$O.out.$i" 2>&1 &
		pids="$pids $!"
	done
	wait $pids
}
io_many() { # SOCKET RW BS QD N: N clients from one nvme-drv-io process (--clients), lines split per client
	timeout $((T + 120)) "$IO" ${IO_ARGS:-} --socket "$1" --clients "$5" --rw "$2" --bs "$3" \
		--qd "$4" --time "$T" > "$O.all" 2>&1 || true
	local i
	for i in $(seq "$5"); do grep "^client $i: " "$O.all" > "$O.out.$i" || true; done
}
perf_run() { # DEVICE RW BS QD: nvme-drv-perf (DRV_ARGS passed through)
	timeout $((T + 60)) "$PERF" $DRV_ARGS --device "$1" --rw "$2" --bs "$3" --qd "$4" --time "$T" > "$O.out.1" 2>&1
}

waitsock() { local i; for i in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }
vdev_of() { # VDPA-NAME -> /dev/vdX, waiting for it to appear
	local i b
	for i in $(seq 100); do
		for b in /sys/bus/vdpa/devices/$1/virtio*/block/*; do
			[ -e "$b" ] && { echo "/dev/$(basename "$b")"; return 0; }
		done
		sleep 0.1
	done
	return 1
}

# Controller ownership: only one process or driver has it at a time.
to_vfio() { "$TOP/tests/vm/bind-vfio" --quiet "$BDF"; }
# The kernel's nvme driver with N poll queues (0: interrupts only); the
# parameter is read when the controller is probed, so it is rebound.
to_kernel() { # POLL-QUEUES -> prints the namespace's block device
	"$TOP/tests/vm/modprobe" nvme
	echo "$1" > /sys/module/nvme/parameters/poll_queues
	[ -e "/sys/bus/pci/devices/$BDF/driver" ] && echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
	"$TOP/tests/vm/bind-vfio" --quiet --driver nvme "$BDF"
	local i b
	for i in $(seq 100); do
		for b in /sys/bus/pci/devices/$BDF/nvme/nvme*/nvme*n1; do
			[ -e "$b" ] && [ -e "/dev/${b##*/}" ] && { echo "/dev/${b##*/}"; return 0; }
		done
		sleep 0.1
	done
	say "no namespace from the kernel's nvme driver"; return 1
}
# qemu-storage-daemon's nvme:// starts reliably only on a controller the
# kernel driver had just before (TESTBED.md): callers pass through to_kernel.
qsd_start() { # NAME ARGS... (sets QSD; its stderr goes to $W/NAME.err)
	local name=$1
	shift
	qemu-storage-daemon --object iothread,id=t0 "$@" 2>> "$W/$name.err" &
	QSD=$!
}
# stop PID: TERM, then KILL (qemu-storage-daemon 7.2 may hang on TERM with
# nvme://). With an iothread it often aborts at exit instead ("qemu_mutex_destroy:
# Device or resource busy", bash then says "Aborted"): after the measurements,
# harmless.
stop() {
	kill "$1" 2>/dev/null
	local i
	for i in $(seq 30); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}
# Hold N vhost-user clients connected and idle: nvme-drv-io runs one I/O,
# then is stopped (SIGSTOP) with its rings set up and nothing in flight.
idle_clients() { # SOCKET-with-%i N -> sets IDLE_PIDS
	local i
	IDLE_PIDS=
	for i in $(seq "$2"); do
		$IO ${IO_ARGS:-} --socket "$(echo "$1" | sed "s/%i/$i/")" --rw randread --qd 1 --time 3600 > /dev/null 2>&1 &
		IDLE_PIDS="$IDLE_PIDS $!"
	done
	sleep 1
	kill -STOP $IDLE_PIDS
	sleep 0.5
}
idle_clients_end() { kill -KILL $IDLE_PIDS 2>/dev/null; wait $IDLE_PIDS 2>/dev/null; return 0; }
