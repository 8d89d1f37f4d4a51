# raftkv — see README.md. `make run` starts a node, `make test` runs the test
# suite, `make test-system` the system tests too.
GO       ?= go
WASM_ENV := GOOS=wasip1 GOARCH=wasm
KV_WASM  := plugins/kv/kvwasm/kv.wasm
BIN      := bin/raftkv
BENCHBIN := bin/raftkv-bench
# The Go modules tested here: the host (.), and the plugin authoring kit (abi,
# plugins/sdk), its own modules so that a plugin's go.mod does not pull in
# raft, wazero or SSH (bench/etcd has its own targets).
MODULES  := . abi plugins/sdk
# make fuzz runs every Fuzz target in the tree for FUZZTIME (.ci/run does; go
# test runs their seed corpora in make test): a count of
# executions, not a duration, because Go 1.26's fuzz coordinator can fail a
# duration run at its deadline with a bare "context deadline exceeded" and no
# failing input on a loaded machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 50000x

.PHONY: all build run deps raceflags test test-system test-rust test-short test-docker fuzz crashtest chaos plugins bench bench-etcd bench-scale bench-go lint check clean

all: build

# The version, commit and build time are stamped in (scripts/ldflags.sh;
# `make build VERSION=v1.2.0` sets the version). `raftkv version` prints them.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$$(sh scripts/ldflags.sh)" -o $(BIN) ./cmd/raftkv

# A single node with the embedded KV plugin, data in ./raftkv-data/node1.
run: build
	./$(BIN) serve --node-id node1 --data-dir ./raftkv-data/node1 --bootstrap

# Debian packages the tests need (clang and lld for the C plugin; rustc,
# cargo and the wasm32 standard library for the Rust SDK and plugin;
# chromium for the /ui page's browser test).
deps:
	bash scripts/deps.sh

# Every package is tested under the race detector but wazero's compiler (the
# packages RACEFLAGS name: its SSA builder, frontend and backends). Instrumented,
# it compiled kv.wasm in 13-14 s instead of 2.1-2.4 s (1.2 s without -race), and
# the tests compile dozens of plugins: three in-process nodes compiling at once
# starved their own Raft of CPU. Only these packages may go uninstrumented: they
# use no atomics, no sync.Map and no generic code of the standard library's that
# synchronises (a sync.Mutex keeps its race annotations when inlined). Leaving
# all of wazero out made the race detector report races that are not there (in
# msgpack's type cache, 15 runs in 20 of a two-goroutine program): the linker
# keeps one copy of each generic instantiation, and it kept wazero's
# uninstrumented copy of sync.Map's lookup (go tool objdump: its atomic loads
# inlined, without the race runtime's calls) for the whole binary.
WAZEVO    := github.com/tetratelabs/wazero/internal/engine/wazevo
RACEFLAGS := -race -gcflags=$(WAZEVO)/ssa=-race=false -gcflags=$(WAZEVO)/frontend=-race=false -gcflags=$(WAZEVO)/backend/...=-race=false
# Prints RACEFLAGS, for a go test by hand: go test $$(make -s raceflags) ./host/
raceflags:
	@echo "$(RACEFLAGS)"

# make test is every test but the system tests, under the race detector:
# under -short a test of several in-process nodes (internal/cluster.Start),
# of the built binary's processes (test/system), or a long property or
# crash-injection run skips. make test-system runs every test, those
# included (about 30 minutes on 2 cores; the in-process clusters wait on
# Raft's timeouts, not on the CPU); .ci/run runs both, and the fuzzers.
# Test artefacts (the /ui page's screenshots) go to bin/artifacts.
test: deps
	for m in $(MODULES); do $(GO) -C $$m vet ./... || exit 1; done
	$(MAKE) test-rust
	for m in $(MODULES); do RAFTKV_ARTIFACTS=$(CURDIR)/bin/artifacts $(GO) -C $$m test $(RACEFLAGS) -short -count=1 -timeout 20m ./... || exit 1; done

test-system: deps
	for m in $(MODULES); do RAFTKV_ARTIFACTS=$(CURDIR)/bin/artifacts $(GO) -C $$m test $(RACEFLAGS) -count=1 -timeout 40m ./... || exit 1; done

# The Rust SDK's and the Rust example's unit tests, natively, with Debian's
# toolchain (chosen by path, as plugins/sdk-rust/build.sh does; make deps).
# Their wasm builds are tested by go test (plugins/sdk-rust, examples/rust-max).
RUST_CARGO := RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo
test-rust: deps
	$(RUST_CARGO) test --offline --manifest-path plugins/sdk-rust/Cargo.toml
	$(RUST_CARGO) test --offline --manifest-path examples/rust-max/Cargo.toml

# The Docker Compose cluster of examples/docker (builds the FROM-scratch
# image): the seed's flow and a restart (TestDockerCompose); writes and reads
# across nodes, the HEALTHCHECK, the leader's container killed, failover,
# the container restarted and rejoining with its data (TestDockerFailover).
# Needs a Docker engine and docker-compose (make deps installs the latter).
test-docker: deps
	@docker info >/dev/null 2>&1 || { echo "test-docker: no Docker engine answers 'docker info'"; exit 1; }
	RAFTKV_DOCKER_TEST=1 $(GO) test -count=1 -timeout 15m -run '^TestDocker' ./cmd/raftkv/

# make test's suites without the race detector, for a quick check. Many of
# these tests wait out time limits rather than compute, so up to 8 test
# binaries run at once (-p 8: 61 s against 104 s with the default 2 on 2 cores).
test-short:
	for m in $(MODULES); do $(GO) -C $$m test -count=1 -short -p 8 ./... || exit 1; done

fuzz:
	@grep -rH '^func Fuzz' --include='*_test.go' . | \
	  sed -E 's#^\./(.*)/[^/]*_test.go:func (Fuzz[A-Za-z0-9]*).*#./\1 \2#' | \
	  while read pkg name; do \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) -C $$pkg test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) . || exit 1; \
	  done

# The Raft log stores' crash-injection test, long: CRASH_ITERATIONS SIGKILLs
# of a worker appending and truncating, per store (make test-system runs 20, make test 5).
# CRASH_SEED replays a run.
CRASH_ITERATIONS ?= 2000
crashtest:
	RAFTKV_CRASH_ITERATIONS=$(CRASH_ITERATIONS) RAFTKV_CRASH_SEED=$(CRASH_SEED) \
	  $(GO) test -count=1 -timeout 0 -v -run '^TestCrash' ./internal/crashtest/

# The process-level fault suite (test/chaos, docs/operations.md): clusters
# of bin/raftkv under kill -9, SIGSTOP, iptables partitions, a full disk,
# membership changes and plugin upgrades, with a recorded history checked
# for linearizability, lost writes, restarts and equal digests. Runs of
# CHAOS_RUN each, one seed each (from CHAOS_SEED, random if unset; the seed
# is printed, and replays the faults), for CHAOS_TIME in all; CHAOS_FAULTS
# picks faults (comma-separated names), CHAOS_LOG_STORE (bolt or wal) the
# log store of every run, CHAOS_NET the nodes' address prefix (127.0.3.).
# Needs root (iptables, tmpfs).
CHAOS_TIME ?= 30m
CHAOS_RUN  ?= 2m
chaos: build
	RAFTKV_CHAOS_TIME=$(CHAOS_TIME) RAFTKV_CHAOS_RUN=$(CHAOS_RUN) RAFTKV_CHAOS_SEED=$(CHAOS_SEED) \
	  RAFTKV_CHAOS_FAULTS=$(CHAOS_FAULTS) RAFTKV_CHAOS_LOG_STORE=$(CHAOS_LOG_STORE) RAFTKV_CHAOS_NET=$(CHAOS_NET) RAFTKV_CHAOS_BIN=$(CURDIR)/$(BIN) \
	  $(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' ./test/chaos/

# Every plugin: the default KV plugin (committed and embedded; see its
# go:generate line), and the examples into bin/plugins/ (the C one needs
# clang and lld, the Rust one Debian's rustc and cargo: make deps).
plugins: deps
	$(GO) generate ./plugins/kv/kvwasm
	@mkdir -p bin/plugins
	$(WASM_ENV) $(GO) build -trimpath -buildmode=c-shared -o bin/plugins/ledger.wasm ./examples/ledger
	$(WASM_ENV) $(GO) build -trimpath -buildmode=c-shared -o bin/plugins/ledger-v2.wasm ./examples/ledger/v2
	$(WASM_ENV) $(GO) build -trimpath -buildmode=c-shared -o bin/plugins/queue.wasm ./examples/queue
	$(WASM_ENV) $(GO) build -trimpath -buildmode=c-shared -o bin/plugins/queue-v2.wasm ./examples/queue/v2
	sh examples/c-counter/build.sh bin/plugins/counter.wasm
	sh examples/rust-max/build.sh bin/plugins/max.wasm

# End-to-end load on a fresh local 3-node cluster of the built binary, then
# raftkv against etcd side by side (bench-etcd). BENCH_SCALE=0.1 for a short
# run; see BENCHMARKS.md.
bench:
	bash scripts/bench.sh
	$(MAKE) bench-etcd

# A 3-node raftkv and an embedded 3-node etcd on 127.0.8.x, the same
# workloads alternating between them, a table of raftkv/etcd ratios. The
# comparison is its own module (bench/etcd/go.mod): the product does not
# depend on etcd. BENCH_ETCD_DURATION (5s) per run, BENCH_ETCD_ROUNDS (2, best of).
bench-etcd:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/raftkv
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BENCHBIN) ./cmd/raftkv-bench
	cd bench/etcd && CGO_ENABLED=0 $(GO) build -trimpath -o ../../bin/etcd-vs-raftkv .
	./bin/etcd-vs-raftkv --raftkv-bin $(BIN) --bench-bin $(BENCHBIN)

# One node loaded with BENCH_SCALE_KEYS keys (default 10M; 16 B keys, 100 B
# values) through POST /v1/txn: heap and RSS per key, snapshot persist,
# restart to ready, a new follower catching up by snapshot (bench/scale).
bench-scale:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/raftkv
	$(GO) run ./bench/scale --raftkv-bin $(BIN)

# Go benchmarks: apply path (wasm vs native), store, transport; then the node
# level: snapshot and restore of 1M keys through a file snapshot store, and
# writes and reads through the leader vs forwarded by a follower (3-node cluster).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./host/plugin/ ./host/state/ ./host/transport/
	$(GO) test -run '^$$' -bench '^BenchmarkSnapshot1M$$' -benchmem -count 1 ./internal/fsm/
	$(GO) test -run '^$$' -bench '^BenchmarkForward$$' -benchmem -count 1 ./host/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	for m in $(MODULES); do $(GO) -C $$m vet ./... || exit 1; done
	for m in abi plugins/sdk; do $(WASM_ENV) $(GO) -C $$m vet ./... || exit 1; done
	$(WASM_ENV) $(GO) vet ./plugins/... ./examples/queue/...

# Generated files are current and go.mod is tidy.
check: lint
	$(MAKE) plugins
	@git diff --exit-code -- $(KV_WASM) || { echo "$(KV_WASM) is stale: run 'make plugins' and commit it"; exit 1; }
	$(GO) mod tidy
	@# -e: offline, tidy cannot fetch what msgpack's own tests import
	@# (testify), which the small modules' graphs do not otherwise hold.
	for m in abi plugins/sdk; do $(GO) -C $$m mod tidy -e || exit 1; done
	@git diff --exit-code -- go.mod go.sum abi/go.mod abi/go.sum plugins/sdk/go.mod plugins/sdk/go.sum || { echo "go.mod/go.sum not tidy: run 'go mod tidy' in each module and commit"; exit 1; }

clean:
	rm -rf bin raftkv-data
