# shimcheck -- top-level wrapper around CMake/CTest.
#
#   make run     install missing deps, build, run shimcheck (traces in build/traces/)
#   make test    install missing deps, build, run the CTest suite
#   make asan    the same tests built with ASan+UBSan (in build-asan-ubsan/)
#   make iso     the same up to the build, then the GRUB ISO (BIOS + UEFI) of the shipped
#                scenarios for a PC; prints its path (docs/hardware.md)
#   make deps | configure | build | clean
#
# tools/setup-deps.sh installs missing Debian packages (as root) and, since
# Debian 12 only ships Unicorn 2.0, a private Unicorn >= 2.1 in build/deps/.

JOBS      ?= 2
DEPS_DIR  := $(or $(SHIMCHECK_DEPS_DIR),$(CURDIR)/build/deps)
SHIMCHECK := build/tools/shimcheck
TRACES    := build/traces

# Let pkg-config find the private Unicorn (the CMake presets add it too).
export PKG_CONFIG_PATH := $(DEPS_DIR)/unicorn/usr/lib/x86_64-linux-gnu/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))

.PHONY: all deps configure build run test asan iso clean

all: build

deps:
	bash tools/setup-deps.sh

configure: deps
	cmake --preset dev

build: configure
	cmake --build build -j$(JOBS)

# The verdict of the last command is make's verdict; the first two only
# write the traces (build/traces/default.{jsonl,txt}).
run: build
	@mkdir -p $(TRACES)
	$(SHIMCHECK) run --trace $(TRACES)/default.jsonl --format jsonl > $(TRACES)/default.out || true
	$(SHIMCHECK) trace > $(TRACES)/default.txt || true
	@echo "traces: $(TRACES)/default.jsonl (JSONL), $(TRACES)/default.txt (review)"
	$(SHIMCHECK) run

test: build
	ctest --test-dir build --output-on-failure -j$(JOBS)

asan: deps
	cmake --preset asan-ubsan
	cmake --build build-asan-ubsan -j$(JOBS)
	ctest --test-dir build-asan-ubsan --output-on-failure -j$(JOBS)

# The kernel's output on the PC's COM1 goes to `shimcheck compare LOG` (docs/hardware.md).
iso: build
	cmake --build build --target boot_iso
	@echo "ISO: $(CURDIR)/build/tools/boot/shimcheck.iso"

clean:
	rm -rf build build-*
