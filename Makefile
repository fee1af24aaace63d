# The rpc runtimes. `make run` sets up a fresh machine and runs a busybox
# container on each runtime; `make test` runs the tests (as root).

CARGO ?= cargo
BUNDLE ?= /tmp/rpc-demo-bundle
APT_PACKAGES = busybox-static libseccomp-dev runc crun python3 containerd protobuf-compiler podman valgrind
# The guest kernel of rpc-runv (rpc-runv/guest/build.sh) and the test
# guests; virtiofsd (rpc-runv/guest/virtiofsd.sh) links libseccomp and
# libcap-ng; qemu-system-x86: rpc-runv's QEMU backend (microvm, TCG).
GUEST_APT_PACKAGES = linux-source-6.1 bc flex bison libelf-dev cpio gcc make libseccomp-dev libcap-ng-dev qemu-system-x86

.PHONY: all build links deps guest-deps guest run test unit fuzz reliability bench bench-vmm conformance fmt clippy clean link-order

# Runtimes the conformance page compares (ours as they exist, and peers).
CONFORMANCE_RUNTIMES = $(foreach r,rpc-runc rpc-runlxc rpc-runv,$(if $(wildcard target/release/$(r)),--runtime $(r)=target/release/$(r))) \
	$(if $(wildcard /usr/sbin/runc),--runtime runc=/usr/sbin/runc) $(if $(wildcard /usr/bin/crun),--runtime crun=/usr/bin/crun)

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

guest-deps:
	@missing=""; for p in $(GUEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The guest kernel and test initramfs, cached in /var/cache/rpc-runtimes
# (RPC_GUEST_CACHE): ~6.5 min on 2 cores the first time, instant after;
# virtiofsd, the virtio-fs backend (cargo install, 75-110 s the first
# time, cached there too), and vhost-device-vsock, QEMU's vsock backend
# (cargo install, ~4 min beside other builds, cached likewise).
guest: guest-deps
	rpc-runv/guest/build.sh
	rpc-runv/guest/virtiofsd.sh
	rpc-runv/guest/vhost-device-vsock.sh

# Cargo builds for an explicit target (see .cargo/config.toml); the
# binaries are linked into target/release, where everything looks for them.
OUT = target/x86_64-unknown-linux-gnu/release
BINS = rpc-runc rpc-runv rpc-conformance containerd-shim-rpc-v2 rpc-vmm
# One shim binary under the names containerd derives from the runtime
# types io.containerd.rpc-{runc,runlxc,runv}.v2.
SHIM_NAMES = containerd-shim-rpc-runc-v2 containerd-shim-rpc-runlxc-v2 containerd-shim-rpc-runv-v2

build:
	$(CARGO) build --release --workspace
	@$(MAKE) --no-print-directory links
	@# rpc-runc/link-order.txt names symbols with hashes that change with the
	@# dependency graph (and the workspace build unifies features, so it is
	@# the build to profile and relink): re-profile and relink when most of
	@# them no longer match.
	@if scripts/link-order.sh --if-stale; then $(CARGO) build --release --workspace && $(MAKE) --no-print-directory links; fi

links:
	@mkdir -p target/release && for b in $(BINS); do ln -f $(OUT)/$$b target/release/$$b; done
	@# rpc-runv's guests boot the agent and this build's rpc-runc: their
	@# initramfs sits beside rpc-runv, where it looks for it.
	@rpc-runv/guest/initramfs.sh $(OUT)/rpc-agent $(OUT)/rpc-runc target/release/rpc-runv-agent.cpio >/dev/null
	@for n in $(SHIM_NAMES); do ln -f $(OUT)/containerd-shim-rpc-v2 target/release/$$n; done

# Build, then run one busybox container on each runtime that exists.
run: deps guest build
	scripts/mkbundle.sh $(BUNDLE)
	target/release/rpc-runc --root /run/rpc-runc-demo run --bundle $(BUNDLE) rpc-demo-$$$$
	@# The same bundle in a micro-VM: the guest's own kernel says hello.
	target/release/rpc-runv --root /run/rpc-runv-demo run --bundle $(BUNDLE) rpc-demo-$$$$

# All tests: unit tests of every crate and the integration tests that run
# real containers (they skip, saying why, without root), and rpc-vmm's
# test guests and Linux boot (they need /dev/kvm and the guest kernel).
# Every skipped test is recorded in RPC_TEST_SKIPS (testkit's `skip!`);
# after the run scripts/test-skips.py prints the totals and fails on a
# skip that tests/skips.txt does not list with its reason.
TEST_SKIPS = $(CURDIR)/target/test-skips.txt
TEST_LOG = $(CURDIR)/target/test-log.txt
TEST_LOG_OLD = $(CURDIR)/target/test-log-oldkernel.txt
test: export RPC_TEST_SKIPS = $(TEST_SKIPS)
test: export CARGO := $(CARGO)
# The tests (conformance included) run the `ci` profile's build: the
# release build (fat LTO, `make build`) is what `make run` and `make bench`
# use, and `make test` does not pay for it.
#
# Everything is compiled once, by the first command, with the whole
# workspace's features (`--all-targets`: what `cargo test --workspace`
# builds, and the plain binaries the conformance runner needs). A later
# `cargo test -p rpc-runc` or `cargo build -p conformance -p rpc-runc`
# resolves features for those packages alone (serde_core, memchr, bitflags
# and syn differ): it compiled most of the dependency graph and every
# rpc-runc test binary a second and a third time. So the old-kernel pass
# runs the test binaries already built (scripts/test-bins.py), and the
# conformance runner the binaries already built.
#
# Then all tests (`cargo test --workspace`), then rpc-runc's integration
# tests again on an older kernel's system-call surface (no memfd, pidfd,
# openat2, close_range, clone3: testkit's seccomp filter, so
# runtime-core's fallbacks run for real), then the conformance suite on
# rpc-runc. (Run beside the main run, the old-kernel pass failed a
# recycled-pid test and the shim's reliability suite lost a ctr run's
# output: one after the other until that is understood.)
CI_OUT = target/x86_64-unknown-linux-gnu/ci
test: deps guest
	@rm -f $(TEST_SKIPS) $(TEST_LOG) $(TEST_LOG_OLD); mkdir -p target
	$(CARGO) build --workspace --profile ci --all-targets
	rpc-runv/guest/initramfs.sh $(CI_OUT)/rpc-agent $(CI_OUT)/rpc-runc $(CI_OUT)/rpc-runv-agent.cpio
	scripts/test-skips.py run --log $(TEST_LOG) -- $(CARGO) test --workspace --profile ci -- --test-threads=4
	RPC_TEST_OLD_KERNEL=1 scripts/test-skips.py run --log $(TEST_LOG_OLD) -- \
		scripts/test-bins.py --package rpc-runc --profile ci -- --test-threads=4
	scripts/test-skips.py run --log $(TEST_LOG_OLD) -- $(CI_OUT)/rpc-conformance --runtime rpc-runc=$(CI_OUT)/rpc-runc \
		--require rpc-runc --expected-failures conformance/expected-failures.txt
	scripts/test-skips.py check --list tests/skips.txt --record $(TEST_SKIPS) --log $(TEST_LOG) --log $(TEST_LOG_OLD)

unit:
	$(CARGO) test --workspace --profile ci --lib --bins

# The fuzz targets of runtime-core, the shim and rpc-vmm for FUZZ_SECS
# each (the 2 s pass with a fixed seed is part of `make test`), with a
# new seed each run unless RPC_FUZZ_SEED is set. Crashes are saved in
# $$TMPDIR/rpc-fuzz-crashes (see testkit/src/fuzz.rs).
FUZZ_SECS ?= 60
fuzz:
	RPC_FUZZ_SECS=$(FUZZ_SECS) RPC_FUZZ_SEED=$${RPC_FUZZ_SEED:-time} \
		$(CARGO) test --profile ci -p runtime-core -p shim -p vmm --test fuzz -- --test-threads=2

# The load and fault suite at full size (issue 19): 10,000 create/start/
# delete cycles sequential and 10,000 in 4 streams, 200 random kill -9 per
# verb on top of every fault point (rpc-runc built with the fault-points
# feature into target/fault-points), a full --root; 500 `ctr run --rm` and
# 5 rounds of 50 tasks in one pod under containerd, a pod shim killed under
# live tasks. `make test` runs the same tests at CI size.
reliability: deps build
	RPC_RELIABILITY=full $(CARGO) test --profile ci -p rpc-runc --test load --test faults -- --nocapture --test-threads=1
	RPC_RELIABILITY=full $(CARGO) test --profile ci -p shim --test reliability -- --nocapture --test-threads=1

bench: deps build
	python3 bench/bench.py
	python3 bench/shim_bench.py

# Re-profile the hot path (valgrind) into rpc-runc/link-order.txt, which
# the linker uses to pack hot functions together (see rpc-runc/build.rs).
link-order: build
	scripts/link-order.sh
	$(MAKE) build

# rpc-vmm against QEMU microvm (see bench/vmm.py)
bench-vmm: deps build guest
	@dpkg -s qemu-system-x86 >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 >/dev/null; }
	python3 bench/vmm.py

# The conformance table of our runtimes, runc and crun -> conformance/RESULTS.md
conformance: deps build
	target/release/rpc-conformance $(CONFORMANCE_RUNTIMES) --expected-failures conformance/expected-failures.txt \
		--results-md conformance/RESULTS.md

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
