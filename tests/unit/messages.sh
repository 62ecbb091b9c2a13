#!/bin/sh
# The messages a user gets for the command-line mistakes of issue 10, each
# exactly: exit 1 and one line on stderr. No controller is needed: every
# one of them must come before any is brought up.
#   messages.sh NVME_DRV NVME_DRV_CTL NVME_DRV_IO
D=$1 CTL=$2 IO=$3
failed=0 n=0

# expect EXIT "STDERR" COMMAND...
expect() {
	want_rc=$1 want=$2
	shift 2
	n=$((n + 1))
	got=$("$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" != "$want_rc" ] || [ "$got" != "$want" ]; then
		echo "FAIL: $*"
		echo "  exit $rc, wanted $want_rc"
		echo "  got:    $got"
		echo "  wanted: $want"
		failed=$((failed + 1))
	fi
}

expect 1 "nvme-drv: error: --ds-max belongs to a client: give --client SOCKET (or vduse:NAME) first" \
	"$D" --ds-max 4
expect 1 "nvme-drv: error: --device belongs to a client: give --client SOCKET (or vduse:NAME) first" \
	"$D" --device=SN:n1
expect 1 "nvme-drv: error: --client vduse: needs a device NAME after 'vduse:' (1-31 of A-Z a-z 0-9 . _ -), e.g. --client vduse:vd0" \
	"$D" --client vduse:
expect 1 "nvme-drv: error: --device SN:n0: not a device name (SERIAL:nNSID, SERIAL:nNSID:N, UUID, partuuid:UUID or partlabel:NAME)" \
	"$D" --pci 0000:00:1f.7 --client /tmp/x.sock --device SN:n0
expect 1 "nvme-drv: error: --json goes with --list (a running server's disks: nvme-drv-ctl --json disks)" \
	"$D" --json
expect 1 "nvme-drv: error: --socket-mode: '0668' is not a mode: octal digits only, e.g. 0660" \
	"$D" --socket-mode 0668
expect 1 "nvme-drv: error: --socket-owner nosuchuser-nvd: no user 'nosuchuser-nvd'" \
	"$D" --socket-owner nosuchuser-nvd
expect 1 "nvme-drv: error: --socket-owner :nosuchgroup-nvd: no group 'nosuchgroup-nvd'" \
	"$D" --socket-owner :nosuchgroup-nvd
# --timeout 0 is "for ever" in both programs: a missing server is the error.
expect 1 "nvme-drv-ctl: error: ENOENT: cannot connect to /nonexistent/ctl.sock: No such file or directory" \
	"$CTL" --svr /nonexistent/ctl.sock --timeout 0 list
expect 1 "nvme-drv-io: error: /nonexistent/io.sock: cannot connect: No such file or directory" \
	"$IO" --timeout 0 --socket /nonexistent/io.sock --info
expect 1 "nvme-drv-ctl: error: list takes no arguments but 'json' (see --help)" \
	"$CTL" --svr /x list all
expect 1 "nvme-drv-ctl: error: --json: a create with -- COMMAND prints nothing of its own (see --help)" \
	"$CTL" --svr /x --json create 0 device=SN:n1 -- true
# A socket file nobody of this kernel listens on (a stopped server, or one
# on 9p or NFS, bound elsewhere).
dead=$(mktemp -u /tmp/nvd-messages.XXXXXX)
if python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])' "$dead" 2>/dev/null; then
	expect 1 "nvme-drv-ctl: error: ECONNREFUSED: cannot connect to $dead: no server of this machine is bound there (nvme-drv stopped, or a socket file on a shared file system such as 9p or NFS, which never connects: use a local path, e.g. /run)" \
		"$CTL" --svr "$dead" list
	rm -f "$dead"
fi
for p in "$D" "$CTL" "$IO"; do
	n=$((n + 1))
	"$p" --version | grep -Eq '^nvme-drv(-ctl|-io)? [0-9]+\.[0-9]+\.[0-9]+$' ||
		{ echo "FAIL: $p --version: $("$p" --version 2>&1)"; failed=$((failed + 1)); }
done
echo "messages: $n checks, $failed failed"
[ "$failed" = 0 ]
