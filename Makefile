# raftkv — see README.md. `make run` starts a node, `make test` runs every test.
GO       ?= go
WASM_ENV := GOOS=wasip1 GOARCH=wasm
KV_WASM  := plugins/kv/kvwasm/kv.wasm
BIN      := bin/raftkv
# Every Fuzz target in the tree runs for FUZZTIME in `make test`: a count of
# executions, not a duration, because Go 1.26's fuzz coordinator can fail a
# duration run at its deadline with a bare "context deadline exceeded" and no
# failing input on a loaded machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 50000x

.PHONY: all build run deps test test-short test-docker fuzz plugins bench bench-go lint check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/raftkv

# A single node with the embedded KV plugin, data in ./raftkv-data/node1.
run: build
	./$(BIN) serve --node-id node1 --data-dir ./raftkv-data/node1 --bootstrap

# Debian packages the examples need (clang and lld for the C plugin).
deps:
	bash scripts/deps.sh

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# The Docker Compose cluster (builds a FROM-scratch image; about 70 s).
test-docker:
	RAFTKV_DOCKER_TEST=1 $(GO) test -count=1 -run TestDockerCompose ./cmd/raftkv/

test-short:
	$(GO) test -count=1 -short ./...

fuzz:
	@grep -rH '^func Fuzz' --include='*_test.go' . | \
	  sed -E 's#^\./(.*)/[^/]*_test.go:func (Fuzz[A-Za-z0-9]*).*#./\1 \2#' | \
	  while read pkg name; do \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done

# Every plugin: the default KV plugin (committed and embedded; see its
# go:generate line), and the examples into bin/plugins/ (the C one needs
# clang and lld: make deps).
plugins: deps
	$(GO) generate ./plugins/kv/kvwasm
	@mkdir -p bin/plugins
	$(WASM_ENV) $(GO) build -trimpath -buildmode=c-shared -o bin/plugins/ledger.wasm ./examples/ledger
	$(WASM_ENV) $(GO) build -trimpath -buildmode=c-shared -o bin/plugins/ledger-v2.wasm ./examples/ledger/v2
	sh examples/c-counter/build.sh bin/plugins/counter.wasm

# End-to-end load on a fresh local 3-node cluster of the built binary.
bench:
	bash scripts/bench.sh

# Go benchmarks: apply path (wasm vs native), store, transport; then the node
# level: snapshot and restore of 1M keys through a file snapshot store, and
# writes and reads through the leader vs forwarded by a follower (3-node cluster).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./host/plugin/ ./host/state/ ./host/transport/
	$(GO) test -run '^$$' -bench '^(BenchmarkSnapshot1M|BenchmarkForward)$$' -benchmem -count 1 ./host/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(WASM_ENV) $(GO) vet ./abi ./plugins/...

# Generated files are current and go.mod is tidy.
check: lint
	$(MAKE) plugins
	@git diff --exit-code -- $(KV_WASM) || { echo "$(KV_WASM) is stale: run 'make plugins' and commit it"; exit 1; }
	$(GO) mod tidy
	@git diff --exit-code -- go.mod go.sum || { echo "go.mod/go.sum not tidy: run 'go mod tidy' and commit"; exit 1; }

clean:
	rm -rf bin raftkv-data
