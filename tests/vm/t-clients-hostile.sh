#!/usr/bin/env bash
# Hostile clients (issue: "Clients"): every attack of nvme-drv-hostile on a
# running nvme-drv while a well-behaved client verifies its own partition,
# then ds-max and -d/--register-ds as nvme-drv-io sees them. One boot:
#   NVD-H  ns1 64 MiB GPT: good (8 MiB), victim (16 MiB)   ns2 16 MiB 4Kn, no table
# Clients: good (ds-max 3), victim (ds-max 2, the attacks' target), and
# ns2 read-only (the 4Kn and read-only attacks). The server is the ASan
# build when there is one, so memory it touches outside the client's
# regions is an error, not luck. Afterwards on the host: good holds the
# pattern, every other byte of both images is unchanged (no attack wrote).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkwork hostile

mkimg "$work/a.img" 64
sgdisk -Z -n 1:2048:+8M -c 1:good -n 2:0:+16M -c 2:victim "$work/a.img" >/dev/null
mkimg "$work/b.img" 16
for f in a b; do cp "$work/$f.img" "$work/$f.orig"; done

D=$build/src/daemon/nvme-drv
asan_d=$top/build-asan/src/daemon/nvme-drv
[ -x "$asan_d" ] && D=$asan_d
IO=$build/tools/nvme-drv-io
H=$build/tests/hostile/nvme-drv-hostile
if [ ! -x "$H" ] || [ ! -x "$IO" ]; then fail "t-clients-hostile: $H or $IO is not built"; exit 1; fi
attacks="desc-outside desc-loop long-chain status-readable past-end zero-length avail-jump
	indirect-next msg-unknown msg-oversize msg-truncated msg-mem-table msg-ring-outside
	msg-config ds-max mem-table-live"
attacks=$(echo $attacks)
ro_attacks="partial-lba ro-write past-end status-readable"

cat > "$work/guest.sh" <<GUEST
W=$work
$guest_steps_prelude
waitsock() { for i in \$(seq 100); do [ -S "\$1" ] && return 0; sleep 0.1; done; return 1; }
fds() { ls /proc/\$1/fd | wc -l; }
$D -v --client /tmp/good.sock --device partlabel:good --ds-max 3 \
	--client /tmp/victim.sock --device partlabel:victim --ds-max 2 \
	--client /tmp/ro.sock --device NVD-H:n2 --readonly 2>"\$W/server.err" &
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
GUEST

start=$SECONDS
"$run" --timeout 240 --nvme serial=NVD-H --ns file="$work/a.img" --ns file="$work/b.img,lbs=4096" \
	-- sh "$work/guest.sh" > "$work/vm.out" 2>&1
vmrc=$?
[ $vmrc = 0 ] || { fail "vm run: exit $vmrc: $(tail -n 5 "$work/vm.out" | tr '\n' ' ')"; exit 1; }
echo "# VM run: $((SECONDS - start)) s, server $D"

# Named after the server bugs they found.
declare -A regression=(
	[msg-config]="regression: GET_CONFIG error reply had a 12-byte payload, not an empty one"
	[mem-table-live]="regression: rings read through unmapped memory after SET_MEM_TABLE"
)
hostile() { # STEP ATTACK
	local line; line=$(head -1 "$work/$1.out" 2>/dev/null)
	local note=${regression[$2]:-}
	if [ "$(rc_of "$1")" = 0 ] && [ "${line#ok }" != "$line" ]; then ok "$1: ${line#ok $2: }${note:+ ($note)}"
	else fail "$1: exit $(rc_of "$1"): $line $(head -c 300 "$work/$1.err")${note:+ ($note)}"; fi
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
for f in server server2; do
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

ic=$here/imgcheck.py
if out=$(python3 "$ic" "$work/a.orig" "$work/a.img" 512 --rel-pattern 2048:16384); then
	ok "host check a: good holds the pattern; victim, GPT and the rest unchanged"
else fail "host check a: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
if out=$(python3 "$ic" "$work/b.orig" "$work/b.img" 4096); then ok "host check b: the read-only namespace unchanged"
else fail "host check b: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
exit $failed
