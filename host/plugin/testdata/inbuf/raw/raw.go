//go:build wasip1

// Package raw is the raw-ABI core of the inbuf test modules (ABI.md
// section 1): raftkv_alloc, which counts its calls, and raftkv_apply and
// raftkv_query, which answer "ALLOCS:INPUT": the number of raftkv_alloc
// calls this instance has had so far, and the input as the host wrote it.
// Command with exports raftkv_input_buffer too (ABI v1.2); command without
// does not, as a module built before v1.2.
package raw

import (
	"strconv"
	"unsafe"
)

//go:wasmimport raftkv result
func result(code, ptr, n uint32)

// Buf is the buffer raftkv_input_buffer offers (command with); its size is
// BufSize.
var Buf [BufSize]byte

// BufSize is the capacity of Buf.
const BufSize = 1024

var (
	in     []byte
	allocs int
)

// Ptr returns the guest address of b[0].
func Ptr(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmexport raftkv_abi_v1
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 {
	allocs++
	if uint32(cap(in)) < n+1 {
		in = make([]byte, n+1)
	}
	return Ptr(in)
}

// input returns the n bytes at ptr, which must be Buf or raftkv_alloc's
// buffer.
func input(ptr, n uint32) []byte {
	switch {
	case n == 0:
		return nil
	case ptr == Ptr(Buf[:]) && n <= BufSize:
		return Buf[:n]
	case ptr == Ptr(in) && n <= uint32(len(in)):
		return in[:n]
	}
	panic("input [" + strconv.Itoa(int(ptr)) + ", +" + strconv.Itoa(int(n)) + ") is neither Buf nor the raftkv_alloc buffer")
}

func echo(ptr, n uint32) {
	b := strconv.AppendInt(nil, int64(allocs), 10)
	b = append(b, ':')
	b = append(b, input(ptr, n)...)
	result(0, Ptr(b), uint32(len(b)))
}

// raftkv_apply treats its input as one entry and echoes the whole batch
// encoding: the test decodes it.
//
//go:wasmexport raftkv_apply
func apply(ptr, n uint32) { echo(ptr, n) }

//go:wasmexport raftkv_query
func query(ptr, n uint32) { echo(ptr, n) }
