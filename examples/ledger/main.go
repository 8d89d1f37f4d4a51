//go:build wasip1

// Command ledger is the ledger example plugin, version 1.0.0: package
// examples/ledger/ledger built as a WASI reactor. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ledger.wasm ./examples/ledger
//
// and deploy it with `raftkv plugin deploy ledger ledger.wasm`. See README.md.
package main

import (
	"github.com/raftkv/raftkv/examples/ledger/ledger"
	"github.com/raftkv/raftkv/plugins/sdk"
)

func init() { sdk.Register(ledger.V1) }

// main is never called: the host calls _initialize, which runs init.
func main() {}
