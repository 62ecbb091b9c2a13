#!/bin/sh
# meson install --destdir into a scratch directory: the programs, the man
# pages, the systemd units and the defaults file must all be there (issue
# 10: "meson install --destdir installs binaries, man pages and units"),
# and every man page must render with man -l.
#   install-check.sh BUILD_DIR
set -u
build=$1
dest=$(mktemp -d "${TMPDIR:-/tmp}/nvd-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
if ! meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1; then
	echo "meson install failed:"; cat "$dest.log"; rm -f "$dest.log"; exit 1
fi
rm -f "$dest.log"
bad=0
for f in sbin/nvme-drv sbin/nvme-drv-ctl sbin/nvme-drv-setup bin/nvme-drv-io bin/nvme-drv-perf \
	 man8/nvme-drv.8 man8/nvme-drv-ctl.8 man8/nvme-drv-setup.8 man1/nvme-drv-io.1 \
	 man1/nvme-drv-perf.1 system/nvme-drv.service system/nvme-drv@.service default/nvme-drv; do
	if ! find "$dest" -path "*/$f" | grep -q .; then
		echo "not installed: $f"; bad=1
	fi
done
for p in $(find "$dest" -name '*.[18]'); do
	if command -v man >/dev/null && ! MANWIDTH=80 man -l "$p" >/dev/null 2>"$dest/err"; then
		echo "man -l $p: $(cat "$dest/err")"; bad=1
	fi
done
[ $bad = 0 ] && echo "installed: $(find "$dest" -type f | wc -l) files, every man page renders"
exit $bad
