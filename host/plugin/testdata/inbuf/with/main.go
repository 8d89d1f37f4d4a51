//go:build wasip1

// Command with is the inbuf test module with raftkv_input_buffer (ABI
// v1.2), answering as the link-time flag -X main.mode=... says:
//
//	(empty)   raw.Buf, 1 KiB: the honest answer
//	none      capacity 0: no buffer
//	outside   a buffer beyond the end of any guest memory
//	overflow  a buffer whose end wraps around 2^32 (pointer + capacity
//	          taken as an i32 would look small)
//	huge      raw.Buf's pointer with capacity 2^32-1
//	trap      panics
package main

import "github.com/raftkv/raftkv/host/plugin/testdata/inbuf/raw"

var mode string

//go:wasmexport raftkv_input_buffer
func inputBuffer() uint64 {
	ptr, capacity := uint64(raw.Ptr(raw.Buf[:])), uint64(raw.BufSize)
	switch mode {
	case "none":
		ptr, capacity = 0xffffffff, 0
	case "outside":
		ptr, capacity = 0xffff0000, 16
	case "overflow":
		ptr, capacity = 0xffffff00, 0x200
	case "huge":
		capacity = 0xffffffff
	case "trap":
		panic("no buffer today")
	}
	return capacity<<32 | ptr
}

func main() {}
