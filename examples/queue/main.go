//go:build wasip1

// Command queue is the job queue example plugin, version 1.0.0. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildvcs=false -buildmode=c-shared -o queue.wasm ./examples/queue
package main

import (
	"github.com/raftkv/raftkv/examples/queue/queue"
	"github.com/raftkv/raftkv/plugins/sdk"
)

func init() { sdk.Register(queue.V1) }

func main() {}
