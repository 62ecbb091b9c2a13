# The two commands of the README, and the builds behind them.
#   make demo    show the main job in the test VM
#   make check   every test: unit tests (ASan/UBSan) on the host, then the VM tests
BUILD      ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps test-deps build asan check unit vmtest demo bench clean

all: build

deps:
	@scripts/install-deps build

test-deps:
	@scripts/install-deps test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

check: test-deps build asan
	tests/check

unit: asan
	tests/check --unit-only

vmtest: test-deps build
	tests/check --vm-only

demo: test-deps build
	tests/demo

bench: test-deps build
	bench/raw

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
