# The two commands of the README, and the builds behind them.
#   make demo    show the main job in the test VM
#   make check   every test: unit tests (ASan/UBSan) and fuzz targets (30 s
#                each) on the host, then the VM tests
#   make fuzz    only the fuzz targets, FUZZ_TIME seconds each (default 600)
BUILD      ?= build
ASAN_BUILD ?= build-asan
# libFuzzer needs clang, and Meson one C compiler per build directory.
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 600

.PHONY: all deps test-deps build asan fuzz-build check unit fuzz vmtest demo bench clean

all: build

deps:
	@scripts/install-deps build

# test-deps after deps, and every meson setup after its packages: with
# make -j two apt-get runs would race for dpkg's lock, meson setup would run
# before meson is installed, and the ASan build (the unit tests') would be
# set up without groff and man-db, leaving out the man page tests.
test-deps: deps
	@scripts/install-deps test

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja: | test-deps
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

$(FUZZ_BUILD)/build.ninja: | test-deps
	CC=clang meson setup $(FUZZ_BUILD) --buildtype=debugoptimized -Dfuzz=enabled \
		-Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

fuzz-build: test-deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

check: test-deps build asan fuzz-build
	tests/check

unit: asan
	tests/check --unit-only

fuzz: fuzz-build
	NVD_FUZZ_TIME=$(FUZZ_TIME) tests/check --fuzz-only

vmtest: test-deps build
	tests/check --vm-only

demo: test-deps build
	tests/demo

bench: test-deps build
	bench/raw

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
