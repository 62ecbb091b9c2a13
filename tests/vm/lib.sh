# Shared helpers for the VM test scripts (sourced). Each check prints one
# line: "ok NAME", "FAIL NAME: why" or "SKIP NAME: why" (tests/check counts them).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
top=$(cd "$here/../.." && pwd -P)
run=$here/run
build=${BUILD:-$top/build}
failed=0

ok() { echo "ok $*"; }
fail() { echo "FAIL $*"; failed=1; }
skip() { echo "SKIP $*"; }

# A work directory inside the checkout, so the guest sees it read-write.
mkwork() {
	work=$(mktemp -d "$top/build/vmtest-$1.XXXXXX")
	trap 'rm -rf "$work"' EXIT
}

# Random contents, so that "unchanged" means something.
mkimg() { # FILE SIZE_MIB
	head -c "$(($2 << 20))" /dev/urandom > "$1"
}

# Guest side: run a named step, keeping its stdout, stderr and exit code
# in $work/NAME.{out,err,rc} for the host to judge after the run.
guest_steps_prelude='
step() { n=$1; shift; "$@" >"$W/$n.out" 2>"$W/$n.err"; echo $? >"$W/$n.rc"; }
'

rc_of() { cat "$work/$1.rc" 2>/dev/null || echo missing; }

# NAME expects exit 0 from step NAME.
expect_ok() {
	local rc; rc=$(rc_of "$1")
	if [ "$rc" = 0 ]; then ok "$1"; else fail "$1: exit $rc: $(tail -n 3 "$work/$1.err" "$work/$1.out" 2>/dev/null | tr '\n' ' ' | cut -c1-400)"; fi
}

# NAME WORD: the step must fail with exit 1 and exactly one error line on
# stderr, naming WORD; anything else there may only be warnings (a disk's
# own problems), never a sanitizer or crash report.
expect_error() {
	local rc errs other; rc=$(rc_of "$1")
	errs=$(grep -c ': error: ' "$work/$1.err")
	other=$(grep -vc -e ': error: ' -e ': warning: ' "$work/$1.err")
	if [ "$rc" != 1 ]; then fail "$1: exit $rc, expected 1"; return; fi
	if [ "$errs" != 1 ] || [ "$other" != 0 ]; then fail "$1: expected one error line: $(head -c 300 "$work/$1.err")"; return; fi
	if ! grep ': error: ' "$work/$1.err" | grep -qF -- "$2"; then fail "$1: error does not name '$2': $(cat "$work/$1.err")"; return; fi
	ok "$1 ($(grep ': error: ' "$work/$1.err"))"
}
