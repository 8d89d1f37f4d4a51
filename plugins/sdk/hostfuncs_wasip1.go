//go:build wasip1

package sdk

// Host functions of ABI.md section 2 (import module "raftkv"). Pointers and
// lengths are i32 offsets into this module's memory, passed as uint32.

//go:wasmimport raftkv state_get
func hostStateGet(kptr, klen, vptr, vcap, verptr uint32) int64

//go:wasmimport raftkv state_set
func hostStateSet(kptr, klen, vptr, vlen uint32) int32

//go:wasmimport raftkv state_delete
func hostStateDelete(kptr, klen uint32) int32

//go:wasmimport raftkv state_scan
func hostStateScan(sptr, slen, eptr, elen, limit, bufptr, bufcap uint32) int64

//go:wasmimport raftkv result
func hostResult(code, ptr, n uint32)

//go:wasmimport raftkv log
func hostLog(level, ptr, n uint32)

//go:wasmimport raftkv entry_index
func hostEntryIndex() int64

//go:wasmimport raftkv entry_term
func hostEntryTerm() int64

//go:wasmimport raftkv entry_time
func hostEntryTime() int64
