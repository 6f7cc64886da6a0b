# The README's two commands:  make run   and   make test
JOBS ?= $(shell nproc)
ARGS ?=

.PHONY: deps build run test test-release test-asan fuzz deb test-package bench bench-quick bench-auth bench-lifecycle bench-metadata bench-replicas clean

deps:
	@./.ci/install-deps

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target regcache

# Builds and runs regcache on the local default: 127.0.0.1:5000, SQLite + ./data,
# Docker Hub upstream. Extra flags: make run ARGS="--upstream http://127.0.0.1:5001"
run: build
	./build/release/proxy/regcache serve $(ARGS)

# Builds and runs every test twice: optimised with warnings as errors, then
# under AddressSanitizer + UndefinedBehaviorSanitizer.
test: deps test-release test-asan

test-release:
	cmake --preset ci >/dev/null
	cmake --build --preset ci -j $(JOBS)
	ctest --preset ci -j 2

test-asan:
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j 2

# Builds the libFuzzer harnesses (tests/fuzz, clang, ASan + UBSan) and runs
# each for FUZZ_SECONDS from its seed corpus; fails on any crash
# (tests/fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh build/fuzz

# Builds build/regcache_<version>_<arch>.deb (installs its build tools through
# apt); fails unless lintian is clean.
deb:
	./packaging/build-deb.sh

# Installs, runs, upgrades, removes and purges the package on this machine
# (needs root).
test-package:
	./packaging/test-package.sh

# Side-by-side benchmark: regcache vs docker-registry's proxy mode vs nginx
# (bench/README.md). Not a test: nothing fails on a timing.
BENCH_ARGS ?=
bench: deps
	bench/run $(BENCH_ARGS)
	bench/auth
	bench/lifecycle
	bench/metadata
	cmake --build --preset release -j $(JOBS) --target s3_peers
	bench/replicas

# What client authentication costs: manifest GET by digest with auth off, Basic, Bearer.
bench-auth: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target regcache
	bench/auth

# Storage cap and metrics on the hit path, eviction throughput, start-up with a big store (issues 12, 15).
bench-lifecycle: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target regcache
	bench/lifecycle $(LIFECYCLE_ARGS)

# PostgreSQL vs SQLite metadata: manifest by tag within TTL and with tag_ttl 0, hosted push rate (issue 17).
bench-metadata: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target regcache
	bench/metadata

# Replicas on PostgreSQL + RGW behind haproxy: warm rates with 1-3 replicas, cold via S3
# vs local, 50 simultaneous cold GETs over 3 replicas, docker-registry on RGW (issue 18).
bench-replicas: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target regcache s3_peers
	bench/replicas

bench-quick: deps
	bench/run --quick $(BENCH_ARGS)

clean:
	rm -rf build
