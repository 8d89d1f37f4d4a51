//go:build wasip1

// Command info is a raw-ABI module whose raftkv_info reports the code and the
// hex-encoded payload set at build time with -ldflags "-X main.code=2 -X
// main.payload=…". It applies nothing.
package main

import (
	"encoding/hex"
	"strconv"
	"unsafe"
)

var (
	code    = "0"
	payload = "" // hex
)

//go:wasmimport raftkv result
func result(code, ptr, n uint32)

var buf []byte

//go:wasmexport raftkv_abi_v1
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 {
	buf = make([]byte, n+1)
	return uint32(uintptr(unsafe.Pointer(&buf[0])))
}

//go:wasmexport raftkv_apply
func apply(p, n uint32) {}

//go:wasmexport raftkv_query
func query(p, n uint32) { result(0, 0, 0) }

//go:wasmexport raftkv_info
func info() {
	c, err := strconv.Atoi(code)
	if err != nil {
		panic(err)
	}
	b, err := hex.DecodeString(payload)
	if err != nil {
		panic(err)
	}
	var p uint32
	if len(b) > 0 {
		p = uint32(uintptr(unsafe.Pointer(&b[0])))
	}
	result(uint32(c), p, uint32(len(b)))
}

func main() {}
