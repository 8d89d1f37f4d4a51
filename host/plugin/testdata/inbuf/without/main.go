//go:build wasip1

// Command without is the inbuf test module as a module built before ABI
// v1.2: no raftkv_input_buffer, so every input goes through raftkv_alloc.
package main

import _ "github.com/raftkv/raftkv/host/plugin/testdata/inbuf/raw"

func main() {}
