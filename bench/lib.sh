# bench/lib.sh: what the benchmark scripts share on the host (sourced).
#   bench_init NAME "$@"    options --time S (default 10), --runs N (default
#                           3), --out FILE (the tables as Markdown), plus the
#                           script's own (BENCH_OPTS="--counts:COUNTS ...")
#   bench_guest <<'EOF'     the guest script's body (bash): it starts with
#                           bench/guest-lib.sh sourced and W T RUNS BUILD TOP
#                           DRV_ARGS set
#   bench_vm VM-RUN-ARGS... boots the guest (tests/vm/run) and runs it
#   bench_report ARGS...    bench/report.py on the results (see there)
# Environment:
#   NVD_DRV_ARGS  extra options for nvme-drv and nvme-drv-perf (e.g.
#                 "--poll-max-us 50" or "--no-shadow-doorbells"), to compare
#                 driver features without editing the scripts
#   BUILD         nvme-drv's build directory (default build/)
#   KEEP=1        keep the work directory (raw outputs under r/)
# TCG makes every figure noisy: read ratios within one run, not absolute
# numbers across runs or machines. The paths are interleaved: run 1 of every
# path, then run 2 of every path, and so on.
here=$(cd "$(dirname "$0")" && pwd -P)
top=$(cd "$here/.." && pwd -P)
build=${BUILD:-$top/build}

bench_init() { # NAME ARGS...
	BENCH=$1
	shift
	T=10 RUNS=3 OUT=
	while [ $# -gt 0 ]; do
		case $1 in
		--time) T=$2; shift ;;
		--runs) RUNS=$2; shift ;;
		--out) OUT=$2; shift ;;
		*)
			local o found=
			for o in ${BENCH_OPTS:-}; do
				if [ "$1" = "${o%%:*}" ]; then printf -v "${o#*:}" %s "$2"; shift; found=1; fi
			done
			[ -n "$found" ] || { echo "bench/$BENCH: unknown argument $1 (see the head of bench/$BENCH)" >&2; exit 2; }
			;;
		esac
		shift
	done
	[ -x "$build/src/daemon/nvme-drv" ] || { echo "bench/$BENCH: no nvme-drv in $build (make build)" >&2; exit 2; }
	mkdir -p "$top/build"
	work=$(mktemp -d "$top/build/bench-$BENCH.XXXXXX")
	[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
	DRV_ARGS=${NVD_DRV_ARGS:-}
}

bench_guest() { # the body on stdin
	{
		echo "set -u"
		printf 'W=%q T=%q RUNS=%q BUILD=%q TOP=%q DRV_ARGS=%q\n' "$work" "$T" "$RUNS" "$build" "$top" "$DRV_ARGS"
		echo ". \"\$TOP/bench/guest-lib.sh\""
		cat
	} > "$work/guest.sh"
}

bench_vm() { # tests/vm/run arguments (before --)
	LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
	# The guest's stderr passes through bench/hostcpu.py, which reads QEMU's
	# threads at measure()'s marks (RUN.host beside each RUN.meta) and drops
	# the marks; should it die, cat passes on the rest (stderr and stdout are
	# two pipes now, so their lines may interleave differently).
	{ "$top/tests/vm/run" "$@" -- bash "$work/guest.sh" 2>&1 1>&3 3>&- |
		{ python3 "$here/hostcpu.py" "$work" $$ || cat; } >&2 3>&-; } 3>&1
	LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
}

bench_report() {
	python3 "$here/report.py" "$work" "$@" ${OUT:+--md "$OUT"}
	echo "($T s per point, $RUNS interleaved runs, spread = min/median-max/median;" \
		"QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}') TCG, $(nproc) host cores," \
		"guest 2 vCPUs${DRV_ARGS:+; nvme-drv options: $DRV_ARGS})"
	# Under TCG the guest cannot see its vCPUs being descheduled on the host:
	# that time counts as CPU time of whatever ran there, and QD1 suffers most.
	echo "(host load average before/after: $LOAD0 / $LOAD1; above ~1 on $(nproc) cores other work" \
		"competes with the guest's vCPUs: expect inflated CPU per I/O and wide spreads)"
}
