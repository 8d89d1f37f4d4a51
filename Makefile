# raftkv — see README.md. `make run` starts a node, `make test` runs every test.
GO       ?= go
WASM_ENV := GOOS=wasip1 GOARCH=wasm
KV_WASM  := plugins/kv/kvwasm/kv.wasm
BIN      := bin/raftkv
# Fuzz targets run briefly by `make test`: package:Target.
FUZZ     := ./abi:FuzzDecodeBatch ./host/state:FuzzRestore
FUZZTIME ?= 5s

.PHONY: all build run test test-short fuzz plugins bench lint check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/raftkv

# A single node with the embedded KV plugin, data in ./raftkv-data/node1.
run: build
	./$(BIN) serve --node-id node1 --data-dir ./raftkv-data/node1 --bootstrap

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

test-short:
	$(GO) test -count=1 -short ./...

fuzz:
	@for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

# Rebuild every plugin; the default KV plugin is committed and embedded.
plugins:
	$(WASM_ENV) $(GO) build -trimpath -buildmode=c-shared -o $(KV_WASM) ./plugins/kv

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./host/plugin/ ./host/state/

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
