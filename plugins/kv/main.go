//go:build wasip1

// Command kv is raftkv's default plugin: package kvplugin built as a WASI
// reactor. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildvcs=false -buildmode=c-shared -o plugins/kv/kvwasm/kv.wasm ./plugins/kv
//
// The host embeds the result through package kvwasm.
package main

import (
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/sdk"
)

func init() { sdk.Register(kvplugin.KV{}) }

// main is never called: the host calls _initialize, which runs init.
func main() {}
