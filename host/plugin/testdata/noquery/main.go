//go:build wasip1

// Command noquery lacks the required raftkv_query export.
package main

//go:wasmexport raftkv_abi_v1
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 { return 0 }

//go:wasmexport raftkv_apply
func apply(p, n uint32) {}

func main() {}
