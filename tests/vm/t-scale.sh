#!/usr/bin/env bash
# Many clients (issue 12): 64 clients of one controller at once, 48 over
# vhost-user (nvme-drv-io) and 16 VDUSE (the guest's kernel), partitions of
# GPT disks and whole namespaces, static (command line) and dynamic
# (nvme-drv-ctl create), each verifying its own 1 MiB at the same time.
# One boot, one controller SC, 512-byte LBAs:
#   ns1       48 MiB GPT, 40 partitions u1..u40 (vhost-user)
#   ns2..ns9  1 MiB each (vhost-user, whole namespaces)
#   ns10      16 MiB GPT, 12 partitions k1..k12 (VDUSE)
#   ns11..14  1 MiB each (VDUSE, whole namespaces)
# Static: u1..u32, ns2..ns5, k1..k8, ns11..ns12 (46); dynamic: the other 18.
# Partitions are 1 MiB with 64 KiB gaps between them, so a write that
# strays by one block changes a byte the host checks.
# Then 48 nvme-drv-io on 4 queues each at once while the server's file
# descriptors, watches and memory are counted: what each client costs.
# Last, 256 more dynamic clients of ns15 (GPT with 256 partitions of 4 KiB,
# m1..m256, nobody connects): list and stats of all 320, text and JSON,
# are whole though far longer than one control message (64 KiB).
# On the host: every vhost-user range carries nvme-drv-io's pattern, every
# VDUSE range the bytes its writer put there, every other byte unchanged.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork scale

SZ=2048		# sectors per range: 1 MiB
GAP=128		# 64 KiB between partitions
start_of() { echo $((2048 + ($1 - 1) * (SZ + GAP))); }	# partition N's first LBA
mkgpt() { # IMG MIB PREFIX COUNT
	local args=() i
	mkimg "$1" "$2"
	for i in $(seq "$4"); do args+=(-n "$i:$(start_of "$i"):$(($(start_of "$i") + SZ - 1))" -c "$i:$3$i"); done
	sgdisk -Z -a 128 "${args[@]}" "$1" >/dev/null	# -a: sgdisk would align starts to 1 MiB
}
mkgpt "$work/n1.img" 48 u 40
mkgpt "$work/n10.img" 16 k 12
MANY=256
mkimg "$work/n15.img" 4
margs=()
for i in $(seq $MANY); do margs+=(-n "$i:$((2048 + (i - 1) * 8)):$((2048 + i * 8 - 1))" -c "$i:m$i"); done
sgdisk -Z --resize-table=$MANY -a 8 "${margs[@]}" "$work/n15.img" >/dev/null
nsargs=()
for n in $(seq 14); do
	[ -e "$work/n$n.img" ] || mkimg "$work/n$n.img" 1
	cp "$work/n$n.img" "$work/n$n.orig"
	nsargs+=(--ns file="$work/n$n.img")
done
cp "$work/n15.img" "$work/n15.orig"
nsargs+=(--ns file="$work/n15.img")
# What each VDUSE client writes: its own random MiB.
for i in $(seq 12); do head -c $((SZ * 512)) /dev/urandom > "$work/k$i.pat"; done
for n in 11 12 13 14; do head -c $((SZ * 512)) /dev/urandom > "$work/n$n.pat"; done

D=$build/src/daemon/nvme-drv
IO=$build/tools/nvme-drv-io
CTL="$build/tools/nvme-drv-ctl --svr /tmp/ctl.sock"
static=()
for i in $(seq 32); do static+=(--client /tmp/u$i.sock --device partlabel:u$i); done
for n in 2 3 4 5; do static+=(--client /tmp/n$n.sock --device SC:n$n); done
for i in $(seq 8); do static+=(--client vduse:k$i --device partlabel:k$i); done
for n in 11 12; do static+=(--client vduse:n$n --device SC:n$n); done
dynamic=()
for i in $(seq 33 40); do dynamic+=("device=partlabel:u$i socket=/tmp/u$i.sock"); done
for n in 6 7 8 9; do dynamic+=("device=SC:n$n socket=/tmp/n$n.sock"); done
for i in 9 10 11 12; do dynamic+=("device=partlabel:k$i vduse=k$i"); done
for n in 13 14; do dynamic+=("device=SC:n$n vduse=n$n"); done
vhu=($(seq -f u%g 40) n2 n3 n4 n5 n6 n7 n8 n9)
vdu=($(seq -f k%g 12) n11 n12 n13 n14)

cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
ms() { echo \$(( \$(date +%s%N) / 1000000 )); }
blkof() { for b in /sys/bus/vdpa/devices/\$1/virtio*/block/*; do [ -e "\$b" ] && { echo "\${b##*/}"; return 0; }; done; return 1; }
waitsock() { for i in \$(seq 600); do [ -S "\$1" ] && return 0; sleep 0.1; done; return 1; }
# The server's open descriptors by kind, its memory, the kernel's pinned pages.
snapshot() { # NAME
	ls -l /proc/\$srv/fd | sed -n "s/.* -> //p" |
		sed 's/:\[[0-9]*\]$//; s/^\/memfd:.*/memfd/; s/^\/dev\/vfio\/.*/vfio/; s/^\/dev\/vduse\/.*/vduse/; s/^\/dev\/shm\/.*/shm/' |
		sort | uniq -c >"\$W/fds-\$1.out"
	grep -E '^(VmRSS|VmLck|VmPin)' /proc/\$srv/status >"\$W/mem-\$1.out"
	grep -c . /proc/\$srv/maps >"\$W/maps-\$1.out"
}
$here/modprobe vduse virtio_vdpa virtio_blk || echo "modprobe failed" >"\$W/modprobe.err"
grep -E 'open files|locked memory' /proc/self/limits >"\$W/limits.out"
t0=\$(ms)
$D -v ${static[*]} --svr /tmp/ctl.sock 2>"\$W/server.err" & srv=\$!
waitsock /tmp/ctl.sock; echo \$((\$(ms) - t0)) >"\$W/start-ms.out"
snapshot static
t0=\$(ms)
i=0
while read -r args; do
	i=\$((i + 1))
	step create-\$i $CTL create 0 \$args
done <<DYN
$(printf '%s\n' "${dynamic[@]}")
DYN
echo \$((\$(ms) - t0)) >"\$W/create-ms.out"
snapshot idle
: >"\$W/vdevs.out"
for c in ${vdu[*]}; do echo "\$c \$(blkof \$c)" >>"\$W/vdevs.out"; done

# All 64 at once: each client writes its range and reads it back.
t0=\$(ms)
for c in ${vhu[*]}; do
	$IO --socket /tmp/\$c.sock --rw verify --bs 64k --qd 4 --queues 2 >"\$W/v-\$c.out" 2>&1 &
	echo "\$c \$!" >>/tmp/pids
done
while read -r c dev; do
	[ -n "\$dev" ] || { echo "no block device" >"\$W/v-\$c.out"; continue; }
	p=$work/\$c.pat
	sh -c "dd if=\$p of=/dev/\$dev bs=64k oflag=direct status=none && dd if=/dev/\$dev bs=64k iflag=direct status=none | cmp - \$p" \\
		>"\$W/v-\$c.out" 2>&1 &
	echo "\$c \$!" >>/tmp/pids
done <"\$W/vdevs.out"
while read -r c pid; do wait \$pid; echo \$? >"\$W/v-\$c.rc"; done </tmp/pids
echo \$((\$(ms) - t0)) >"\$W/verify-ms.out"

# The cost of 48 connected vhost-user clients on 4 queues each, counted
# while they read.
rm /tmp/pids
for c in ${vhu[*]}; do
	$IO --socket /tmp/\$c.sock --rw randread --qd 4 --queues 4 --time 20 >"\$W/r-\$c.out" 2>&1 &
	echo "\$c \$!" >>/tmp/pids
done
t0=\$(ms)
for i in \$(seq 60); do
	step list $CTL list
	[ "\$(grep -c 'connected=yes' "\$W/list.out")" = 64 ] && break
	sleep 0.5
done
echo \$((\$(ms) - t0)) >"\$W/connect-ms.out"
# Connected is not yet set up: each front end still sends its memory and
# rings. Counted inside the readers' 20 s, twice, 2 s apart.
sleep 3
snapshot busy
sleep 2
snapshot busy2
while read -r c pid; do wait \$pid; echo \$? >"\$W/r-\$c.rc"; done </tmp/pids
# One process driving 40 devices at once (nvme-drv-io --clients, the
# benchmarks' load generator): each writes the start of its partition
# and reads it back, with the same pattern its own client wrote there
# before (so the host checks below still hold).
$IO --socket /tmp/u%i.sock --clients 40 --rw verify --bs 4k --qd 4 --count 256 \
	>"\$W/gen.out" 2>&1; echo \$? >"\$W/gen.rc"
# Many clients: reports longer than one control message.
: >"\$W/many-create.err"
for i in \$(seq $MANY); do
	$CTL create 0 device=partlabel:m\$i socket=/tmp/m\$i.sock >/dev/null 2>>"\$W/many-create.err" ||
		echo "m\$i: exit \$?" >>"\$W/many-create.err"
done
step many-list $CTL list
step many-list-json $CTL --json list
step many-stats $CTL stats
step many-stats-json $CTL --json stats
python3 $here/ctlraw.py /tmp/ctl.sock list >"\$W/many-raw.out" 2>&1; echo \$? >"\$W/many-raw.rc"
kill -TERM \$srv; wait \$srv; echo \$? >"\$W/sigterm.rc"
dmesg >"\$W/dmesg.out"
exit 0
GUEST

start=$SECONDS
"$run" --timeout 400 --mem 3072 --nvme serial=SC "${nsargs[@]}" -- bash "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
echo "# vm run: $((SECONDS - start)) s"
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }
[ -e "$work/modprobe.err" ] && { fail "tests/vm/modprobe vduse virtio_vdpa virtio_blk failed"; exit 1; }
echo "# guest limits: $(tr -s ' ' < "$work/limits.out" | tr '\n' ';')"
echo "# 46 static clients up in $(cat "$work/start-ms.out") ms, 18 dynamic ones created in $(cat "$work/create-ms.out") ms"

bad=0
for i in $(seq ${#dynamic[@]}); do
	[ "$(rc_of create-$i)" = 0 ] || { bad=1; fail "create ${dynamic[$((i - 1))]}: exit $(rc_of create-$i): $(head -2 "$work/create-$i.err" | tr '\n' ' ')"; }
done
[ $bad = 0 ] && ok "18 dynamic clients created (12 vhost-user, 6 VDUSE) next to 46 static ones"
nvd=$(awk 'NF == 2' "$work/vdevs.out" | wc -l)
[ "$nvd" = 16 ] && ok "16 VDUSE block devices" || fail "VDUSE block devices: $nvd of 16: $(awk 'NF != 2' "$work/vdevs.out" | tr '\n' ' ')"

echo "# 64 clients verifying at once: $(cat "$work/verify-ms.out") ms"
nok=0
for c in "${vhu[@]}" "${vdu[@]}"; do
	if [ "$(cat "$work/v-$c.rc" 2>/dev/null)" = 0 ]; then nok=$((nok + 1))
	else fail "client $c: verify exit $(cat "$work/v-$c.rc" 2>/dev/null): $(tail -2 "$work/v-$c.out" | tr '\n' ' ')"; fi
done
[ $nok = 64 ] && ok "all 64 clients verified their own range at the same time (48 vhost-user, 16 VDUSE)"
nverify=$(grep -l 'verify: OK' "$work"/v-u*.out "$work"/v-n[2-9].out 2>/dev/null | wc -l)
[ "$nverify" = 48 ] && ok "48 vhost-user clients report 'verify: OK'" || fail "only $nverify vhost-user clients report 'verify: OK'"

nr=0
for c in "${vhu[@]}"; do [ "$(cat "$work/r-$c.rc" 2>/dev/null)" = 0 ] && nr=$((nr + 1)); done
[ $nr = 48 ] && ok "48 vhost-user clients on 4 queues each read at once" ||
	fail "randread with 4 queues: $nr of 48 clients succeeded: $(for c in "${vhu[@]}"; do [ "$(cat "$work/r-$c.rc" 2>/dev/null)" = 0 ] || { echo "$c: $(tail -1 "$work/r-$c.out")"; break; }; done)"
ngen=$(grep -c '^client [0-9]*: verify: OK' "$work/gen.out" 2>/dev/null || true)
[ "$(cat "$work/gen.rc" 2>/dev/null)" = 0 ] && [ "$ngen" = 40 ] &&
	ok "one nvme-drv-io process drove 40 clients (--clients 40): each verified its own range" ||
	fail "nvme-drv-io --clients 40: exit $(cat "$work/gen.rc" 2>/dev/null), $ngen verified: $(grep -v '^client\|^config\|^nvme-drv-io: /tmp' "$work/gen.out" | head -2 | tr '\n' ' ')"
nl=$(grep -c '^client .*connected=yes' "$work/list.out")
[ "$nl" = 64 ] && ok "list: 64 clients, all connected at once ($(cat "$work/connect-ms.out") ms after the readers started)" ||
	fail "list: $nl clients connected: $(grep -c '^client ' "$work/list.out") listed"

# 320 clients: every one listed, in reports of several messages each.
all=$((64 + MANY))
[ -s "$work/many-create.err" ] && fail "creating $MANY clients of ns15: $(head -3 "$work/many-create.err" | tr '\n' ' ')" ||
	ok "$MANY more dynamic clients created ($all in all)"
for r in list stats; do
	expect_ok many-$r; expect_ok many-$r-json
	n=$(grep -c '^client ' "$work/many-$r.out"); sz=$(wc -c <"$work/many-$r.out")
	[ "$n" = $all ] && [ "$sz" -gt 65536 ] && ok "$r: all $all clients in $sz bytes (more than one 64 KiB message)" ||
		fail "$r: $n of $all clients listed, $sz bytes"
	n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["clients"]))' "$work/many-$r-json.out" 2>&1)
	[ "$n" = $all ] && ok "$r --json: one JSON document of all $all clients ($(wc -c <"$work/many-$r-json.out") bytes)" ||
		fail "$r --json: $n"
done
[ "$(grep -c '^client /tmp/m' "$work/many-list.out")" = $MANY ] && ok "list: the $MANY clients of ns15 by name" ||
	fail "list: $(grep -c '^client /tmp/m' "$work/many-list.out") of $MANY clients of ns15"
[ "$(cat "$work/many-raw.rc")" = 0 ] && [ "$(grep -c '^client ' "$work/many-raw.out")" = $all ] &&
	ok "ctlraw.py joins the parts too" || fail "ctlraw.py list: exit $(cat "$work/many-raw.rc"), $(grep -c '^client ' "$work/many-raw.out") clients"

# What the clients cost, from the server's own descriptors and memory.
echo "# a reader: $(grep -h 'iops=' "$work/r-u1.out" | head -1)"
total() { awk '{s += $1} END {print s + 0}' "$work/fds-$1.out"; }
kb() { awk -v k="$2" '$1 == k":" {print $2}' "$work/mem-$1.out"; }
for s in static idle busy busy2; do
	echo "# server with $s clients: $(total $s) fds ($(awk '{printf "%s %s, ", $1, $2}' "$work/fds-$s.out")) RSS $(kb $s VmRSS) kB, locked $(kb $s VmLck) kB, pinned $(kb $s VmPin) kB, $(cat "$work/maps-$s.out") mappings"
done
nofile=$(awk '/open files/ {print $4}' "$work/limits.out")
[ "$(total busy)" -lt "${nofile:-1024}" ] && ok "64 clients busy: $(total busy) open descriptors, under RLIMIT_NOFILE ${nofile:-?}" ||
	fail "64 clients: $(total busy) descriptors, RLIMIT_NOFILE ${nofile:-?}"
[ "$(cat "$work/sigterm.rc")" = 0 ] && ok "SIGTERM with 64 clients: exit 0" || fail "SIGTERM: exit $(cat "$work/sigterm.rc")"
grep -q 'shut down cleanly' "$work/server.err" && ok "controller shut down cleanly" || fail "no clean shutdown: $(tail -3 "$work/server.err" | tr '\n' ' ')"
grep -qi 'sanitizer\|segfault\|assert\|: error: ' "$work/server.err" &&
	fail "server log: $(grep -i 'sanitizer\|segfault\|assert\|: error: ' "$work/server.err" | head -3 | tr '\n' ' ')" ||
	ok "server log: no errors"
if grep -q -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more than' "$work/dmesg.out"; then
	fail "kernel log: $(grep -m3 -e 'WARNING:' -e 'BUG:' -e 'Call Trace' -e 'blocked for more' "$work/dmesg.out" | tr '\n' ' ')"
else ok "kernel log: no warning, oops or hung task"; fi

# Host side.
ic=$here/imgcheck.py
check_img() { # NAME IMG ARGS...
	local name=$1 img=$2; shift 2
	if out=$(python3 "$ic" "$work/$img.orig" "$work/$img.img" 512 "$@"); then ok "host check $name"
	else fail "host check $name: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
}
args=()
for i in $(seq 40); do args+=(--rel-pattern "$(start_of "$i"):$SZ"); done
check_img "ns1: 40 partitions carry their client's pattern; GPT and the gaps between them unchanged" n1 "${args[@]}"
for n in 2 3 4 5 6 7 8 9; do check_img "ns$n: the namespace carries its client's pattern" n$n --rel-pattern 0:$SZ; done
args=()
for i in $(seq 12); do args+=(--any "$(start_of "$i"):$SZ"); done
check_img "ns10: GPT and the gaps between the 12 VDUSE partitions unchanged" n10 "${args[@]}"
cmp -s "$work/n15.orig" "$work/n15.img" && ok "host check ns15: unchanged (its $MANY clients were only listed)" ||
	fail "host check ns15: changed"
bad=0
for i in $(seq 12); do
	cmp -s <(dd if="$work/n10.img" bs=512 skip="$(start_of "$i")" count=$SZ status=none) "$work/k$i.pat" ||
		{ bad=1; fail "host check ns10 partition k$i: not what its VDUSE client wrote"; }
done
[ $bad = 0 ] && ok "host check ns10: each of the 12 partitions holds what its VDUSE client wrote"
for n in 11 12 13 14; do
	cmp -s "$work/n$n.img" "$work/n$n.pat" && ok "host check ns$n: the namespace holds what its VDUSE client wrote" ||
		fail "host check ns$n: not what its VDUSE client wrote"
done
exit $failed
