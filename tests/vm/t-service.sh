#!/usr/bin/env bash
# Running as a system service (issue 10). One boot, two controllers:
#   NVD-A     ns1 32 MiB GPT: one, vm"1, scratch disk (labels that need escaping)
#   "NVD S 1" ns1 8 MiB: a serial with inner spaces (the naming rule keeps them)
# In the guest: nvme-drv-setup gives NVD S 1 to nvme and back; --list and
# its --json; then the command line of the installed nvme-drv.service (its
# ExecStart with NVME_DRV_OPTS) runs under a stand-in service manager
# (notifylisten.py at $NOTIFY_SOCKET), which connects to every socket the
# moment READY=1 comes; an unprivileged user in the --socket-owner group
# verifies through the client socket, one outside it is refused; every
# report in text and --json; SIGTERM sends STOPPING=1.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork service

mkimg "$work/a1.img" 32
sgdisk -Z -n 1:2048:+8M -c 1:one -n 2:0:+4M -c '2:vm"1' -n 3:0:+4M -c '3:scratch disk' \
	"$work/a1.img" >/dev/null
mkimg "$work/b1.img" 8
# A socket file on the file system the guest sees over 9p, bound on the
# host: no socket of the guest's kernel is behind it.
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])' "$work/host.sock"

D=$build/src/daemon/nvme-drv
IO=$build/tools/nvme-drv-io
PERF=$build/tools/nvme-drv-perf
SETUP=$build/tools/nvme-drv-setup
CTL="$build/tools/nvme-drv-ctl --svr /run/nvme-drv/ctl.sock"
GROUP=4242
unit=$build/dist/nvme-drv.service
[ -f "$unit" ] || { fail "no $unit (meson setup too old? make build)"; exit 1; }
# The unit's own command line: ExecStart with the binary of this build and
# NVME_DRV_OPTS as /etc/default/nvme-drv would give it (word-split, as
# systemd splits an unbraced \$VAR).
execstart=$(sed -n 's/^ExecStart=//p' "$unit")
opts="--pci 0000:00:04.0 --svr /run/nvme-drv/ctl.sock --socket-owner 0:$GROUP --socket-mode 0660"
opts+=" --client /run/nvme-drv/vm1.sock --device partlabel:one --client /run/nvme-drv/vm2.sock --device NVD-A:n1:2"
cmdline="$D ${execstart#* }"
cmdline=${cmdline//\$NVME_DRV_OPTS/$opts}
echo "$cmdline" > "$work/cmdline"

cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
waitfile() { for i in \$(seq 300); do grep -q "\$2" "\$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
as_nobody() { setpriv --reuid 65534 --regid 65534 "\$@"; }

# nvme-drv-setup: status, back to nvme, status, to vfio-pci again, status.
$here/modprobe nvme
step setup-status1 $SETUP status
step setup-unbind $SETUP unbind 0000:00:05.0
step setup-status2 $SETUP status
step setup-bind $SETUP bind 0000:00:05.0
step setup-status3 $SETUP status
step setup-bad $SETUP bind 0000:00:1f.7

# Inner spaces in a serial: kept in the names, quoted in the text form.
step name-list $D -v --pci 0000:00:05.0 --io-queues 1 --list
step name-perf $PERF --pci 0000:00:05.0 --device "NVD S 1:n1" --rw verify --bs 4k --qd 4

step ctl-9p $build/tools/nvme-drv-ctl --svr $work/host.sock list
step dlist $D --pci 0000:00:04.0 --list
step dlist-json $D --pci 0000:00:04.0 --list --json

# What systemd does for the unit: RuntimeDirectory (0755), NOTIFY_SOCKET.
mkdir -m 0755 /run/nvme-drv
python3 $here/notifylisten.py /tmp/notify.sock "\$W/notify.log" seq:/run/nvme-drv/ctl.sock \
	stream:/run/nvme-drv/vm1.sock stream:/run/nvme-drv/vm2.sock &
lsn=\$!
for i in \$(seq 50); do [ -S /tmp/notify.sock ] && break; sleep 0.1; done
NOTIFY_SOCKET=/tmp/notify.sock $cmdline 2>"\$W/server.err" &
srv=\$!
waitfile "\$W/notify.log" "accepts /run/nvme-drv/vm2.sock\|refuses"
stat -c '%a %u:%g %n' /run/nvme-drv/ctl.sock /run/nvme-drv/vm1.sock /run/nvme-drv/vm2.sock >"\$W/perms.out"

step nobody-in-group as_nobody --groups $GROUP $IO --socket /run/nvme-drv/vm1.sock --rw verify --bs 4k --qd 4
step nobody-outside as_nobody --clear-groups $IO --socket /run/nvme-drv/vm1.sock --info
step nobody-ctl as_nobody --groups $GROUP $CTL list

for r in list disks stats; do
	step \$r $CTL \$r
	step \$r-json $CTL --json \$r
done
step create-json $CTL --json create 0 "device=partlabel:scratch disk" socket=/run/nvme-drv/d1.sock
step list2 $CTL list
step list2-json $CTL --json list
step disks2 $CTL disks
step disks2-json $CTL --json disks
step destroy-json $CTL --json destroy /run/nvme-drv/d1.sock
step stats2 $CTL stats
step stats2-json $CTL --json stats

kill -TERM \$srv
wait \$srv; echo \$? >"\$W/server.rc"
wait \$lsn; echo \$? >"\$W/notify.rc"
GUEST

"$run" --timeout 500 --nvme serial=NVD-A --ns file="$work/a1.img" \
	--nvme "serial=NVD S 1" --ns file="$work/b1.img" \
	-- bash "$work/guest.sh" >"$work/vm.out" 2>&1
vmrc=$?
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }

# nvme-drv-setup
expect_ok setup-status1
grep -q '^0000:00:05.0 driver=vfio-pci iommu-group=[0-9]* vfio=/dev/vfio/' "$work/setup-status1.out" &&
	ok "setup status: vfio-pci with its group" || fail "setup status1: $(cat "$work/setup-status1.out")"
grep -q '^iommu on' "$work/setup-status1.out" && grep -q '^memlock ' "$work/setup-status1.out" &&
	ok "setup status: IOMMU and RLIMIT_MEMLOCK" || fail "setup status1: $(cat "$work/setup-status1.out")"
expect_ok setup-unbind
grep -q '^0000:00:05.0 driver=nvme ' "$work/setup-status2.out" && ok "setup unbind: on nvme" ||
	fail "setup status2: $(cat "$work/setup-status2.out" "$work/setup-unbind.err")"
expect_ok setup-bind
grep -q '^0000:00:05.0 driver=vfio-pci ' "$work/setup-status3.out" && ok "setup bind: on vfio-pci again" ||
	fail "setup status3: $(cat "$work/setup-status3.out" "$work/setup-bind.err")"
expect_error setup-bad "0000:00:1f.7: no such PCI function"

# Names with inner spaces
expect_ok name-list
grep -q '^controller 0000:00:05.0 serial="NVD S 1" ' "$work/name-list.out" &&
	grep -q '^  namespace "NVD S 1:n1" size=8388608 ' "$work/name-list.out" &&
	ok "a serial with inner spaces: kept, and quoted in --list" || fail "name-list: $(cat "$work/name-list.out")"
expect_ok name-perf
grep -q ': 1 I/O queue of [0-9]*, ' "$work/name-list.err" && ok "'1 I/O queue of N'" ||
	fail "name-list: $(grep -i 'queue' "$work/name-list.err")"
grep -q 'NVD S 1:n1: no partition table$' "$work/name-list.err" && ok "no table: 'no partition table'" ||
	fail "name-list: $(grep -i 'partition' "$work/name-list.err")"
expect_error ctl-9p "no server of this machine is bound there (nvme-drv stopped, or a socket file on a shared file system such as 9p or NFS"

# JSON and text: one document each, saying the same
json_same() { # STEP
	if ! python3 -m json.tool "$work/$1-json.out" >/dev/null 2>"$work/$1-json.parse"; then
		fail "$1 --json does not parse: $(head -c 300 "$work/$1-json.parse")"; return
	fi
	local why
	if why=$(python3 "$here/reportcheck.py" "$work/$1.out" "$work/$1-json.out"); then ok "$1: --json parses and matches the text ($why)"
	else fail "$1: --json differs from the text: $why"; fi
}
for s in dlist list disks stats list2 disks2 stats2; do expect_ok $s; expect_ok $s-json; done
for s in dlist list disks stats list2 disks2 stats2; do json_same $s; done
grep -q 'label="vm\\"1"' "$work/dlist.out" && ok "a label with a quote is escaped" || fail "dlist: $(grep partition "$work/dlist.out")"
grep -q 'device="partlabel:scratch disk"' "$work/list2.out" && ok "a device with a space is quoted" ||
	fail "list2: $(cat "$work/list2.out")"
expect_ok create-json
expect_ok destroy-json
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["socket"])' "$work/create-json.out" 2>&1)" = /run/nvme-drv/d1.sock ] &&
	ok "create --json: {\"socket\": PATH}" || fail "create --json: $(cat "$work/create-json.out")"
[ "$(cat "$work/destroy-json.out")" = "{}" ] && ok "destroy --json: {}" || fail "destroy --json: $(cat "$work/destroy-json.out")"

# disks while serving: what --list shows, plus who holds what
if diff <(sed 's/ held-by=[^ ]*//' "$work/disks.out") "$work/dlist.out" >"$work/disks.diff"; then
	ok "disks shows what --list shows"
else fail "disks differs from --list: $(head -c 400 "$work/disks.diff")"; fi
grep -q 'label="one" .* held-by=/run/nvme-drv/vm1.sock' "$work/disks.out" &&
	grep -q 'label="vm\\"1" .* held-by=/run/nvme-drv/vm2.sock' "$work/disks.out" &&
	ok "disks: held-by on the claimed partitions" || fail "disks: $(cat "$work/disks.out")"
grep -q 'label="scratch disk" .* held-by=/run/nvme-drv/d1.sock' "$work/disks2.out" &&
	ok "disks: a dynamic client's claim" || fail "disks2: $(cat "$work/disks2.out")"
grep -q '^client /run/nvme-drv/vm1.sock target=NVD-A:n1:1 controller=0000:00:04.0 iops=0 riops=0 wiops=0 bps=0 rbps=0 wbps=0 reads=[1-9][0-9]* writes=[1-9]' "$work/stats.out" &&
	ok "stats: the client's counters" || fail "stats: $(cat "$work/stats.out")"
grep -q '^controller 0000:00:04.0 serial="NVD-A" state=ok reads=[1-9]' "$work/stats2.out" && ok "stats: per-controller counters" ||
	fail "stats2: $(cat "$work/stats2.out")"
# Every request served without an error is at least one command, and a
# command's mean time at the device lies between 1 us and 1 s.
awk '/^controller 0000:00:04.0 / {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] + 0 }
	n = v["commands"]; ok = n + v["errors"] >= v["reads"] + v["writes"] && n > 0 &&
	    v["device-us"] >= n && v["device-us"] <= n * 1000000
	print (ok ? "good" : "bad"), n, v["device-us"], v["reads"] + v["writes"] }' "$work/stats2.out" > "$work/devtime.out"
grep -q '^good ' "$work/devtime.out" && ok "stats: the controller's commands and their time at the device ($(cut -d' ' -f2,3 "$work/devtime.out" | sed 's/ / commands, /') us)" ||
	fail "stats2 (commands, device-us): $(cat "$work/devtime.out") $(grep '^controller' "$work/stats2.out")"
grep -Eq '^loop main poll-window-us=[0-9]+ idle-window-us=[0-9]+ rounds=[0-9]+ hits=[0-9]+ sleeps=[1-9][0-9]* skips=[0-9]+ gated=[0-9]+$' "$work/stats2.out" &&
	ok "stats: the serving loop's polling counters" || fail "stats2 (loop): $(cat "$work/stats2.out")"

# Socket permissions and who may connect
grep -q '^660 0:4242 /run/nvme-drv/ctl.sock' "$work/perms.out" && grep -q '^660 0:4242 /run/nvme-drv/vm1.sock' "$work/perms.out" &&
	ok "--socket-owner 0:$GROUP --socket-mode 0660 on the control and client sockets" || fail "perms: $(cat "$work/perms.out")"
expect_ok nobody-in-group
rc=$(rc_of nobody-outside)
[ "$rc" != 0 ] && grep -qi 'permission denied' "$work/nobody-outside.err" &&
	ok "a user outside the group is refused ($(head -1 "$work/nobody-outside.err"))" ||
	fail "nobody-outside: exit $rc: $(cat "$work/nobody-outside.err")"
expect_ok nobody-ctl

# Readiness and stop
grep -q '^got READY=1' "$work/notify.log" && grep -q '^got STATUS=serving 1 disk to 2 clients' "$work/notify.log" &&
	ok "READY=1 with STATUS=" || fail "notify: $(cat "$work/notify.log")"
if grep -q '^refuses' "$work/notify.log" || [ "$(grep -c '^accepts' "$work/notify.log")" != 3 ]; then
	fail "a socket did not accept at READY=1: $(grep -e accepts -e refuses "$work/notify.log" | tr '\n' ' ')"
else ok "every socket accepts when READY=1 arrives"; fi
grep -q '^got STOPPING=1' "$work/notify.log" && [ "$(cat "$work/notify.rc")" = 0 ] &&
	ok "STOPPING=1 at SIGTERM" || fail "notify: no STOPPING=1: $(cat "$work/notify.log")"
[ "$(cat "$work/server.rc")" = 0 ] && ok "SIGTERM: exit 0" || fail "server exit $(cat "$work/server.rc"): $(tail -3 "$work/server.err")"
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12} nvme-drv: info: serving 1 disk to 2 clients; control socket /run/nvme-drv/ctl.sock$' "$work/server.err" &&
	grep -Eq 'nvme-drv: info: stopped$' "$work/server.err" &&
	ok "time-stamped ready and stopped lines at the default level" || fail "server.err: $(cat "$work/server.err")"
exit $failed
