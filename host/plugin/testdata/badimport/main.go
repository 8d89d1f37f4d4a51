//go:build wasip1

// Command badimport imports a function the host does not provide.
package main

//go:wasmimport env launch_missiles
func launch() int32

//go:wasmexport raftkv_abi_v1
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 { return uint32(launch()) }

//go:wasmexport raftkv_apply
func apply(p, n uint32) {}

//go:wasmexport raftkv_query
func query(p, n uint32) {}

func main() {}
