//go:build wasip1

// Command v2 is the ledger example plugin, version 2.0.0: the same ledger
// plus per-account transaction counts and history, and a migration that
// builds them from the state version 1 left. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ledger-v2.wasm ./examples/ledger/v2
//
// and upgrade a running ledger with `raftkv plugin deploy ledger ledger-v2.wasm`.
// See ../README.md.
package main

import (
	"github.com/raftkv/raftkv/examples/ledger/ledger"
	"github.com/raftkv/raftkv/plugins/sdk"
)

func init() { sdk.Register(ledger.V2) }

// main is never called: the host calls _initialize, which runs init.
func main() {}
