#!/usr/bin/env bash
# Hostile clients (issue: "Clients"): every attack of nvme-drv-hostile on a
# running nvme-drv while a well-behaved client verifies its own partition,
# then ds-max and -d/--register-ds as nvme-drv-io sees them, then the
# control socket abused by another user (nobody), and a partition table
# copied onto another disk. One boot:
#   NVD-H  ns1 64 MiB GPT: good (8 MiB), victim (16 MiB), spare (8 MiB)
#          ns2 16 MiB 4Kn, no table    ns3 16 MiB, no table (the attacker's)
# Clients: good (ds-max 3), victim (ds-max 2, the attacks' target), and
# ns2 read-only (the 4Kn and read-only attacks). The server is the ASan
# build when there is one, so memory it touches outside the client's
# regions is an error, not luck. Afterwards on the host: good holds the
# pattern, every other byte of both images is unchanged (no attack wrote).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork hostile

UG=22222222-0000-4000-8000-000000000001
mkimg "$work/a.img" 64
sgdisk -Z -n 1:2048:+8M -c 1:good -u 1:$UG -n 2:0:+16M -c 2:victim -n 3:0:+8M -c 3:spare \
	"$work/a.img" >/dev/null
mkimg "$work/b.img" 16
mkimg "$work/c.img" 16
for f in a b c; do cp "$work/$f.img" "$work/$f.orig"; done
# What a client of the whole ns3 writes there: a GPT whose partition 1 has
# good's UUID (under another label) and whose partition 2 has spare's label.
truncate -s 16M "$work/clone.img"
sgdisk -Z -n 1:2048:+4M -c 1:mine -u 1:$UG -n 2:0:+4M -c 2:spare "$work/clone.img" >/dev/null
head -c $((34 * 512)) "$work/clone.img" >"$work/clone.bin"	# MBR, header, entries
cp "$work/c.orig" "$work/c.expected"
dd if="$work/clone.bin" of="$work/c.expected" conv=notrunc status=none

D=$build/src/daemon/nvme-drv
asan_d=$top/build-asan/src/daemon/nvme-drv
[ -x "$asan_d" ] && D=$asan_d
# NVD_TEST_DRV_ARGS: more nvme-drv options for every server here (t-threads.sh).
D="$D${NVD_TEST_DRV_ARGS:+ $NVD_TEST_DRV_ARGS}"
IO=$build/tools/nvme-drv-io
H=$build/tests/hostile/nvme-drv-hostile
CTL="$build/tools/nvme-drv-ctl --svr /tmp/ctl.sock"
NB="setpriv --reuid=65534 --regid=65534 --clear-groups"
FLOOD="python3 $here/ctlflood.py /tmp/ctl.sock"
if [ ! -x "$H" ] || [ ! -x "$IO" ]; then fail "t-clients-hostile: $H or $IO is not built"; exit 1; fi
attacks="desc-outside desc-loop long-chain status-readable past-end zero-length avail-jump
	indirect-next msg-unknown msg-oversize msg-truncated msg-mem-table msg-ring-outside
	msg-config ds-max mem-table-live call-pipe"
attacks=$(echo $attacks)
ro_attacks="partial-lba ro-write past-end status-readable"

cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
waitsock() { for i in \$(seq 100); do [ -S "\$1" ] && return 0; sleep 0.1; done; return 1; }
fds() { ls /proc/\$1/fd | wc -l; }
$D -v --client /tmp/good.sock --device partlabel:good --ds-max 3 \
	--client /tmp/victim.sock --device partlabel:victim --ds-max 2 \
	--client /tmp/ro.sock --device NVD-H:n2 --readonly --svr /tmp/ctl.sock 2>"\$W/server.err" &
srv=\$!
waitsock /tmp/good.sock && waitsock /tmp/victim.sock && waitsock /tmp/ro.sock
fds \$srv >"\$W/fds-before"
# The well-behaved client, verifying again and again until the attacks end.
(
	i=0
	while [ ! -e /tmp/attacks-done ]; do
		i=\$((i + 1))
		$IO --socket /tmp/good.sock --rw verify --bs 64k --qd 8 --seed \$i >"\$W/good.out" 2>&1 ||
			{ echo "run \$i: \$(tail -3 "\$W/good.out")" >"\$W/good.failed"; break; }
	done
	echo \$i >"\$W/good.runs"
) &
good=\$!
for a in $attacks; do step hostile-\$a $H \$a /tmp/victim.sock; done
for a in $ro_attacks; do step hostile-ro-\$a $H \$a /tmp/ro.sock; done
touch /tmp/attacks-done
wait \$good
step regions-over-ds-max $IO --socket /tmp/victim.sock --regions 3 --rw read --count 8
step regions-at-ds-max $IO --socket /tmp/victim.sock --regions 2 --rw read --qd 4 --count 64
step regions-3 $IO --socket /tmp/good.sock --regions 3 --rw verify --bs 16k --qd 6 --size 4M --seed 101
sleep 0.5	# the last disconnect handled
fds \$srv >"\$W/fds-after"
grep -c memfd: /proc/\$srv/maps >"\$W/maps-after"

# The control socket, shared by the operator with every user.
stat -c %a /tmp/ctl.sock >"\$W/ctl-mode.out"
chmod 0666 /tmp/ctl.sock
# What the serving loops' polling did through all that (a loop per data
# thread with --threads).
step loops $CTL stats
# nobody gets the whole ns3 and writes a copy of ns1's table onto it.
step nb-create $NB $CTL create 0 device=NVD-H:n3 socket=/tmp/att.sock
stat -c %u /tmp/att.sock >"\$W/att-owner.out"
cp "\$W/clone.bin" /tmp/clone.bin; chmod 644 /tmp/clone.bin
step clone-table $NB $H clone-table /tmp/att.sock /tmp/clone.bin
step root-create $CTL create 0 device=partlabel:spare socket=/tmp/root.sock
step nb-destroy-root $NB $CTL destroy /tmp/root.sock
[ -S /tmp/root.sock ]; echo \$? >"\$W/root-sock-kept.rc"
step nb-destroy-static $NB $CTL destroy /tmp/good.sock
step root-destroy-own $CTL destroy /tmp/root.sock
# socket= only directly in the socket directory (/tmp, that of --svr), and
# never over something that is there.
mkdir /tmp/sub
step outside-etc $NB $CTL create 0 device=partlabel:spare socket=/etc/nvd.sock
step outside-dotdot $NB $CTL create 0 device=partlabel:spare socket=/tmp/../etc/nvd.sock
step outside-subdir $NB $CTL create 0 device=partlabel:spare socket=/tmp/sub/nvd.sock
echo keep >/tmp/plain.file
step exists-file $NB $CTL create 0 device=partlabel:spare socket=/tmp/plain.file
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/tmp/stale.sock")'
step exists-stale $NB $CTL create 0 device=partlabel:spare socket=/tmp/stale.sock
ln -s /var/tmp/nvd-target /tmp/link.sock
step exists-symlink $NB $CTL create 0 device=partlabel:spare socket=/tmp/link.sock
{ cat /tmp/plain.file; [ -S /tmp/stale.sock ] && echo stale-kept; [ -L /tmp/link.sock ] && echo link-kept;
  [ -e /var/tmp/nvd-target ] && echo target-made; ls /tmp/sub; } >"\$W/exists-after.out" 2>&1
# A flood of connections by nobody: 16 taken, the rest refused; the
# operator's calls go on; the 16 idle ones are closed after 10 s.
$NB $FLOOD 40 /tmp/flood-ready 15 >"\$W/flood-nb.out" 2>&1 & fl=\$!
for i in \$(seq 300); do [ -e /tmp/flood-ready ] && break; sleep 0.1; done
step flood-list $CTL list
step flood-create $CTL create 0 device=partlabel:spare socket=/tmp/during.sock
step flood-destroy $CTL destroy /tmp/during.sock
wait \$fl
step flood-total $FLOOD 80 /tmp/flood2-ready 0
step after-flood $CTL list
step root-destroy-nb $CTL destroy /tmp/att.sock
sleep 0.5	# the flood's last connections handled
fds \$srv >"\$W/fds-ctl-after"
kill -0 \$srv; echo \$? >"\$W/alive.rc"
kill -TERM \$srv; wait \$srv; echo \$? >"\$W/sigterm.rc"

# Only memory in /dev/shm/trusted may carry DMA now.
truncate -s 64M /dev/shm/trusted
truncate -s 1M /dev/shm/other
$D -v -d /dev/shm/trusted --client /tmp/good.sock --device partlabel:good 2>"\$W/server2.err" &
srv=\$!
waitsock /tmp/good.sock
step ds-memfd $IO --socket /tmp/good.sock --rw read --count 8
step ds-other-file $IO --socket /tmp/good.sock --mem-file /dev/shm/other --rw read --count 8
step ds-trusted $IO --socket /tmp/good.sock --mem-file /dev/shm/trusted --rw verify --bs 16k \
	--qd 4 --size 2M --seed 102
step ds-trusted-regions $IO --socket /tmp/good.sock --mem-file /dev/shm/trusted --regions 2 \
	--rw verify --qd 4 --size 2M --seed 103
kill -TERM \$srv; wait \$srv; echo \$? >"\$W/sigterm2.rc"

# After a restart, the names on both disks are refused as ambiguous;
# SN:nNSID:N names still work.
step dup-static-uuid $D --client /tmp/x.sock --device partuuid:$UG
step dup-static-label $D --client /tmp/x.sock --device partlabel:spare
$D -v --svr /tmp/ctl.sock --client /tmp/u.sock --device NVD-H:n1:1 2>"\$W/server3.err" &
srv=\$!
waitsock /tmp/ctl.sock && waitsock /tmp/u.sock
step dup-ctl-uuid $CTL create 0 device=$UG socket=/tmp/y.sock
step dup-ctl-label $CTL create 0 device=partlabel:spare socket=/tmp/y.sock
step dup-by-name $IO --socket /tmp/u.sock --rw read --count 8
step dup-by-name-n3 $CTL create 0 device=NVD-H:n3:1 socket=/tmp/z.sock
kill -TERM \$srv; wait \$srv; echo \$? >"\$W/sigterm3.rc"
GUEST

start=$SECONDS
"$run" --timeout 420 --nvme serial=NVD-H --ns file="$work/a.img" --ns file="$work/b.img,lbs=4096" \
	--ns file="$work/c.img" -- sh "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }
echo "# VM run: $((SECONDS - start)) s, server $D"

# Named after the server bugs they found.
declare -A regression=(
	[msg-config]="regression: GET_CONFIG error reply had a 12-byte payload, not an empty one"
	[mem-table-live]="regression: rings read through unmapped memory after SET_MEM_TABLE"
	[call-pipe]="regression: SIGPIPE from a client's call fd killed the server"
)
hostile() { # STEP ATTACK
	local line; line=$(head -1 "$work/$1.out" 2>/dev/null)
	local note=${regression[$2]:-}
	if [ "$(rc_of "$1")" = 0 ] && [ "${line#ok }" != "$line" ]; then ok "$1: ${line#ok $2: }${note:+ ($note)}"
	else fail "$1: exit $(rc_of "$1"): $line $(head -c 300 "$work/$1.err")${note:+ ($note)}" \
		"server: $(grep -F /tmp/victim.sock "$work/server.err" | tail -3 | tr '\n' ' ' | cut -c1-600)"; fi
}
for a in $attacks; do hostile "hostile-$a" "$a"; done
for a in $ro_attacks; do hostile "hostile-ro-$a" "$a"; done

runs=$(cat "$work/good.runs" 2>/dev/null || echo 0)
if [ -e "$work/good.failed" ]; then fail "well-behaved client during the attacks: $(cat "$work/good.failed")"
elif [ "$runs" -ge 1 ] && grep -q '^verify: OK' "$work/good.out"; then
	ok "well-behaved client verified its partition $runs times during the attacks"
else fail "well-behaved client: $runs runs: $(tail -3 "$work/good.out")"; fi

expect_error regions-over-ds-max "at most 2 memory regions"
expect_ok regions-at-ds-max
expect_ok regions-3
grep -q 'regions=3' "$work/regions-3.out" && grep -q '^verify: OK' "$work/regions-3.out" &&
	ok "--regions 3 on a ds-max 3 client: buffers in 3 regions, verify OK" ||
	fail "regions-3: $(cat "$work/regions-3.out")"

want=main
[[ "${NVD_TEST_DRV_ARGS:-}" == *"--threads 2"* ]] && want="data-0 data-1"
got=$(awk '$1 == "loop" && / rounds=[0-9]+ hits=[0-9]+ sleeps=[1-9]/ { print $2 }' "$work/loops.out" | xargs)
[ "$got" = "$want" ] && ok "stats: a loop record for each serving loop ($want)" ||
	fail "stats: loops '$got', not '$want': $(grep '^loop' "$work/loops.out")"

[ "$(cat "$work/alive.rc")" = 0 ] && ok "server alive after every attack" || fail "server died: $(tail -5 "$work/server.err" | tr '\n' ' ')"
[ "$(cat "$work/sigterm.rc")" = 0 ] && ok "SIGTERM after the attacks: exit 0" ||
	fail "SIGTERM after the attacks: exit $(cat "$work/sigterm.rc"): $(tail -5 "$work/server.err" | tr '\n' ' ')"
if [ "$(cat "$work/fds-before")" = "$(cat "$work/fds-after")" ] && [ "$(cat "$work/maps-after")" = 0 ]; then
	ok "no fd or client mapping left behind ($(cat "$work/fds-after") fds, as before the attacks)"
else fail "leak: $(cat "$work/fds-before") fds before, $(cat "$work/fds-after") after, $(cat "$work/maps-after") client mappings"; fi
# Each ring attack must have tripped the check it aims at, not another.
for why in 'buffer outside client memory' 'indirect table outside client memory' \
	'descriptor chain loops' 'chain has too many buffers' 'zero-length buffer' \
	'status byte not in a device-writable buffer' 'device-readable buffer after a writable one' \
	'available index moved more than the queue size' 'indirect descriptor with NEXT'; do
	grep -q "needs reset" <(grep -F "$why" "$work/server.err") && ok "server stopped a ring: $why" ||
		fail "server log has no '$why; device needs reset'"
done
for f in server server2 server3; do
	grep -qiE 'sanitizer|runtime error|segfault|assert' "$work/$f.err" &&
		fail "$f log shows a crash: $(grep -iE -m3 'sanitizer|runtime error|segfault|assert' "$work/$f.err" | tr '\n' ' ')"
done

expect_error ds-memfd "refused SET_MEM_TABLE"
expect_error ds-other-file "refused SET_MEM_TABLE"
for s in ds-trusted ds-trusted-regions; do
	expect_ok $s
	grep -q '^verify: OK' "$work/$s.out" || fail "$s: no 'verify: OK'"
done
grep -q 'regions=2' "$work/ds-trusted-regions.out" &&
	ok "two regions at different offsets of the trusted file accepted" ||
	fail "ds-trusted-regions: $(head -2 "$work/ds-trusted-regions.out")"
grep -q 'not backed by a registered dataspace' "$work/server2.err" &&
	ok "server says why it refused the memory" || fail "server2 log: no refusal reason"
[ "$(cat "$work/sigterm2.rc")" = 0 ] && ok "SIGTERM with -d: exit 0" || fail "SIGTERM with -d: exit $(cat "$work/sigterm2.rc")"

# The control socket abused (issue 7): who may do what, where sockets go,
# how many connections.
ctl_err() { # STEP ERRNAME WORD...: nvme-drv-ctl exits 1, its error names ERRNAME and each WORD
	local step=$1 name=$2 rc line; shift 2
	rc=$(rc_of "$step"); line=$(head -1 "$work/$step.err" 2>/dev/null)
	if [ "$rc" != 1 ] || ! grep -q "^nvme-drv-ctl: error: $name: " "$work/$step.err"; then
		fail "$step: exit $rc, wanted $name: $(cat "$work/$step.err" "$work/$step.out" | head -3 | tr '\n' ' ')"; return
	fi
	for w in "$@"; do grep -qF -- "$w" "$work/$step.err" || { fail "$step: '$line' does not name '$w'"; return; }; done
	ok "$step: $line"
}
[ "$(cat "$work/ctl-mode.out")" = 600 ] && ok "control socket made with mode 0600" ||
	fail "control socket mode $(cat "$work/ctl-mode.out"), wanted 600"
expect_ok nb-create
[ "$(cat "$work/att-owner.out")" = 65534 ] && ok "a socket created for nobody belongs to nobody" ||
	fail "socket created for nobody belongs to uid $(cat "$work/att-owner.out")"
hostile clone-table clone-table
expect_ok root-create
ctl_err nb-destroy-root EPERM "created by uid 0" "uid 65534"
[ "$(cat "$work/root-sock-kept.rc")" = 0 ] && ok "root's client survived nobody's destroy" ||
	fail "root's socket gone after nobody's refused destroy"
ctl_err nb-destroy-static EPERM "static"
expect_ok root-destroy-own
ctl_err outside-etc EACCES "socket directory /tmp"
ctl_err outside-dotdot EACCES "socket directory /tmp"
ctl_err outside-subdir EACCES "socket directory /tmp"
ctl_err exists-file EEXIST "/tmp/plain.file"
ctl_err exists-stale EEXIST "/tmp/stale.sock"
ctl_err exists-symlink EEXIST "/tmp/link.sock"
[ "$(cat "$work/exists-after.out")" = "$(printf 'keep\nstale-kept\nlink-kept')" ] &&
	ok "nothing a peer named was unlinked, followed or created" ||
	fail "after the refused creates: $(cat "$work/exists-after.out" | tr '\n' ' ')"
flood=$(cat "$work/flood-nb.out")
if grep -q '^accepted=16 refused=24 connect-failed=0$' <<<"$flood" &&
	grep -q '^refusal: error EAGAIN .*uid 65534 has 16 control connections open' <<<"$flood"; then
	ok "flood by nobody: 16 connections taken, 24 refused ($(grep '^refusal' <<<"$flood"))"
else fail "flood by nobody: $(echo "$flood" | tr '\n' ' ')"; fi
# after: seconds from the report above, which came 1 s or more after the connections.
if grep -qE '^closed-idle=16 after=([7-9]|1[01])$' <<<"$flood" &&
	grep -q '^idle: error ETIMEDOUT .*no request in 10 s' <<<"$flood"; then
	ok "idle connections closed after 10 s ($(grep '^idle' <<<"$flood"))"
else fail "idle connections: $(echo "$flood" | tr '\n' ' ')"; fi
for s in flood-list flood-create flood-destroy; do expect_ok $s; done
if grep -q '^accepted=64 refused=16' "$work/flood-total.out" &&
	grep -q '^refusal: error EAGAIN .*too many control connections (64 open)' "$work/flood-total.out"; then
	ok "flood by root: 64 connections at most ($(grep '^refusal' "$work/flood-total.out"))"
else fail "flood by root: $(cat "$work/flood-total.out" | tr '\n' ' ')"; fi
expect_ok after-flood
expect_ok root-destroy-nb
[ "$(cat "$work/fds-after")" = "$(cat "$work/fds-ctl-after")" ] &&
	ok "no fd left behind by the control socket's abuse" ||
	fail "fds: $(cat "$work/fds-after") before the control socket's abuse, $(cat "$work/fds-ctl-after") after"

# The copied partition table, after a restart.
expect_error dup-static-uuid "NVD-H:n1:1, NVD-H:n3:1"
expect_error dup-static-label "NVD-H:n1:3, NVD-H:n3:2"
ctl_err dup-ctl-uuid ENOTUNIQ "NVD-H:n1:1, NVD-H:n3:1" "SN:nNSID:N"
ctl_err dup-ctl-label ENOTUNIQ "NVD-H:n1:3, NVD-H:n3:2" "SN:nNSID:N"
expect_ok dup-by-name
expect_ok dup-by-name-n3
[ "$(cat "$work/sigterm3.rc")" = 0 ] && ok "SIGTERM after the ambiguous names: exit 0" ||
	fail "SIGTERM (server 3): exit $(cat "$work/sigterm3.rc")"

ic=$here/imgcheck.py
if out=$(python3 "$ic" "$work/a.orig" "$work/a.img" 512 --rel-pattern 2048:16384); then
	ok "host check a: good holds the pattern; victim, GPT and the rest unchanged"
else fail "host check a: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
if out=$(python3 "$ic" "$work/b.orig" "$work/b.img" 4096); then ok "host check b: the read-only namespace unchanged"
else fail "host check b: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
cmp -s "$work/c.expected" "$work/c.img" && ok "host check c: the copied table written, the rest unchanged" ||
	fail "host check c: $(cmp "$work/c.expected" "$work/c.img" 2>&1 | head -1)"
exit $failed
