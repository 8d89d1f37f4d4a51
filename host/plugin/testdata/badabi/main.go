//go:build wasip1

// Command badabi exports the marker of an ABI version the host does not support.
package main

//go:wasmexport raftkv_abi_v2
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 { return 0 }

//go:wasmexport raftkv_apply
func apply(p, n uint32) {}

//go:wasmexport raftkv_query
func query(p, n uint32) {}

func main() {}
