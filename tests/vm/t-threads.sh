#!/usr/bin/env bash
# Data threads: the fault and hostile-client tests again with every server
# at --threads 2, the restart test at --cpus 0,1 (two threads, pinned). Each thread owns
# one of the controller's two I/O queue pairs and half the clients; the
# resets, the health check and the control socket run on the control
# thread with the data threads parked (daemon/workers.h). Checks are those
# of the scripts, named with a "[threads]" prefix.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
rc=0
# t-restart with the threads pinned (--cpus), the others by count.
for t in t-faults.sh:--threads=2 t-clients-hostile.sh:--threads=2 t-restart.sh:--cpus=0,1; do
	export NVD_TEST_DRV_ARGS="${t#*:}"
	NVD_TEST_DRV_ARGS=${NVD_TEST_DRV_ARGS/=/ }
	t=${t%%:*}
	echo "# $t with $NVD_TEST_DRV_ARGS"
	bash "$here/$t" 2>&1 | sed -E 's/^(ok|FAIL|SKIP) /\1 [threads] /'
	[ "${PIPESTATUS[0]}" = 0 ] || rc=1
done
exit $rc
