#!/usr/bin/env bash
# Data threads (nvme-drv --threads 2): the fault, hostile-client and
# restart tests again, every server with two data threads. Each thread owns
# one of the controller's two I/O queue pairs and half the clients; the
# resets, the health check and the control socket run on the control
# thread with the data threads parked (daemon/workers.h). Checks are those
# of the scripts, named with a "[threads]" prefix.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
export NVD_TEST_DRV_ARGS="--threads 2"
rc=0
for t in t-faults.sh t-clients-hostile.sh t-restart.sh; do
	echo "# $t with $NVD_TEST_DRV_ARGS"
	bash "$here/$t" 2>&1 | sed -E 's/^(ok|FAIL|SKIP) /\1 [threads] /'
	[ "${PIPESTATUS[0]}" = 0 ] || rc=1
done
exit $rc
