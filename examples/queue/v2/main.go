//go:build wasip1

// Command v2 is the job queue example plugin, version 2.0.0 (leases, acks,
// and a migration from 1.0.0). Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildvcs=false -buildmode=c-shared -o queue-v2.wasm ./examples/queue/v2
package main

import (
	"github.com/raftkv/raftkv/examples/queue/queue"
	"github.com/raftkv/raftkv/plugins/sdk"
)

func init() { sdk.Register(queue.NewV2()) }

func main() {}
