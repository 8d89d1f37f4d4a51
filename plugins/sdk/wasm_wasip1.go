//go:build wasip1

package sdk

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

// The module's exports (ABI.md section 1). Every export runs on the host's
// FSM goroutine, one at a time, so the package-level buffers below need no
// locking.

var (
	inbuf  [inputBufSize]byte       // the reusable input buffer (raftkv_input_buffer)
	in     []byte                   // raftkv_alloc's buffer for inputs larger than inbuf
	out    = make([]byte, 0, 4<<10) // reused result buffer for Appender plugins
	hs     hostState                // the State given to the plugin
	reader mp.Reader                // batch decoder
)

// Buffers and guest memory. The guest's memory is small (the host caps it at
// 32 MiB by default; the SDK is sized to run in 16, of which the Go runtime
// and this module's data take about 5), a wasm memory cannot shrink, and Go's
// heap does not move objects, so a large buffer needs a free run of its size.
// The SDK therefore keeps few buffers, reuses them, and gives large ones one
// of two sizes, so that a freed large buffer fits the next request of its
// kind and the heap does not fragment.
const (
	// largeBuf is the size of every large buffer (more than 64 KiB): enough
	// for the largest value, scan answer (MaxScanBytes) and KV result.
	largeBuf = 1<<20 + 128<<10
	// batchBuf is the size of the input buffer for a batch larger than
	// largeBuf, up to MaxBatchBytes. It is allocated once, after a
	// collection, and kept. A larger batch gets a buffer of its own size for
	// the call, if the memory has room.
	batchBuf = MaxBatchBytes
	// smallStep rounds the size of small buffers.
	smallStep = 4 << 10
	// inputBufSize is the size of the input buffer the module offers the
	// host (raftkv_input_buffer): every query and small batch is written
	// there, without a raftkv_alloc call.
	inputBufSize = 64 << 10
)

// bufCap returns the capacity to allocate for a buffer of n bytes.
func bufCap(n int) int {
	switch {
	case n <= 64<<10:
		return max(smallStep, (n+smallStep-1)&^(smallStep-1))
	case n <= largeBuf:
		return largeBuf
	case n <= batchBuf:
		return batchBuf
	}
	return (n + 64<<10 - 1) &^ (64<<10 - 1)
}

//go:wasmexport raftkv_abi_v1
func raftkvABIv1() {}

// raftkvInputBuffer offers inbuf to the host (ABI v1.2): capacity<<32 |
// pointer. inbuf is a global, so it is never freed or moved.
//
//go:wasmexport raftkv_input_buffer
func raftkvInputBuffer() uint64 {
	return uint64(len(inbuf))<<32 | uint64(uintptr(unsafe.Pointer(&inbuf[0])))
}

//go:wasmexport raftkv_alloc
func raftkvAlloc(size uint32) uint32 {
	if int(size) <= len(inbuf) {
		// A host that does not know raftkv_input_buffer (before ABI
		// v1.2): the same buffer.
		return uint32(uintptr(unsafe.Pointer(&inbuf[0])))
	}
	if int(size) > cap(in) {
		n := bufCap(int(size))
		in = nil
		if n > largeBuf {
			// A batch of large commands: make room for it first, so that it
			// gets the largest free run the memory can offer.
			out = make([]byte, 0, smallStep)
			hs.buf = nil
			runtime.GC()
		}
		in = make([]byte, n)
	}
	in = in[:cap(in)]
	return ptrOf(in)
}

// input returns the n bytes at ptr, which must lie in inbuf or in the
// buffer returned by raftkv_alloc.
func input(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	if b, ok := within(inbuf[:], ptr, n); ok {
		return b
	}
	b, ok := within(in, ptr, n)
	if !ok {
		panic(fmt.Sprintf("sdk: host passed input [%#x, +%d) outside the input buffer [%#x, +%d) and the raftkv_alloc buffer [%#x, +%d)",
			ptr, n, ptrOf(inbuf[:]), len(inbuf), ptrOf(in), cap(in)))
	}
	return b
}

// within returns buf's n bytes at guest address ptr, if they lie in buf.
func within(buf []byte, ptr, n uint32) ([]byte, bool) {
	base := ptrOf(buf)
	if cap(buf) == 0 || ptr < base || uint64(ptr-base)+uint64(n) > uint64(cap(buf)) {
		return nil, false
	}
	off := int(ptr - base)
	return buf[off : off+int(n) : off+int(n)], true
}

//go:wasmexport raftkv_apply
func raftkvApply(ptr, n uint32) {
	b := input(ptr, n)
	r := &reader
	r.Reset(b)
	count, err := r.ReadArrayHeader()
	if err != nil {
		panic("sdk: malformed batch: " + err.Error())
	}
	off := r.Offset()
	p := registered
	a, appender := p.(Appender)
	var e Entry
	for i := 0; i < count; i++ {
		next, ok := decodeEntry(b, off, &e)
		if !ok {
			r.Reset(b[off:])
			if e, err = readEntry(r); err != nil {
				panic(fmt.Sprintf("sdk: malformed batch entry %d: %v", i, err))
			}
			next = off + r.Offset()
		}
		off = next
		var res []byte
		switch {
		case appender:
			res, err = a.AppendApply(out[:0], &hs, e)
		case p != nil:
			res, err = p.Apply(&hs, e)
		default:
			err = errNoPlugin
		}
		if err != nil {
			reportError(err)
			continue
		}
		hostResult(uint32(abi.CodeOK), ptrOf(res), uint32(len(res)))
		runtime.KeepAlive(res)
		if appender && cap(res) > cap(out) {
			grow(cap(res))
		}
	}
	finish()
}

//go:wasmexport raftkv_query
func raftkvQuery(ptr, n uint32) {
	q := input(ptr, n)
	p := registered
	if p == nil {
		reportError(errNoPlugin)
		return
	}
	_, appender := p.(Appender)
	res, err := callQuery(p, out[:0], &hs, q)
	report(res, err, appender)
	finish()
}

//go:wasmexport raftkv_migrate
func raftkvMigrate(ptr, n uint32) {
	if registered == nil {
		reportError(errNoPlugin)
		return
	}
	var m abi.Migration
	if err := abi.Unmarshal(input(ptr, n), &m); err != nil {
		reportError(Errorf(abi.CodeBadRequest, "malformed migration input: %v", err))
		return
	}
	if mg, ok := registered.(Migrator); ok {
		if err := mg.Migrate(&hs, m); err != nil {
			reportError(err)
			finish()
			return
		}
	}
	report(nil, nil, false)
	finish()
}

//go:wasmexport raftkv_validate
func raftkvValidate(ptr, n uint32) {
	v, ok := registered.(Validator)
	if !ok { // raftkv_info told the host not to call it
		report(nil, nil, false)
		return
	}
	report(nil, v.ValidateCommand(input(ptr, n)), false)
	finish()
}

//go:wasmexport raftkv_info
func raftkvInfo() {
	if registered == nil {
		reportError(errNoPlugin) // the host refuses the module with this message
		return
	}
	// Describer is optional: without it the info is empty, and the plugin is
	// known only by the name it is deployed under.
	var info abi.Info
	if d, ok := registered.(Describer); ok {
		info = d.Info()
	}
	if _, ok := registered.(Migrator); !ok {
		// raftkv_migrate is exported for every plugin; tell the host it is
		// a no-op, so that it reports has_migrate false.
		no := false
		info.Migrate = &no
	}
	if _, ok := registered.(Validator); !ok {
		no := false
		info.Validate = &no // likewise for raftkv_validate
	}
	b, err := abi.Marshal(info)
	if err != nil {
		reportError(err)
		return
	}
	report(b, nil, false)
}

// report sends one result to the host. When the plugin appended to the
// SDK's buffer, it keeps the (possibly grown) buffer for the next call.
func report(res []byte, err error, appended bool) {
	if err != nil {
		reportError(err)
		return
	}
	hostResult(uint32(abi.CodeOK), ptrOf(res), uint32(len(res)))
	runtime.KeepAlive(res)
	if appended && cap(res) > cap(out) {
		grow(cap(res))
	}
}

// grow replaces the result buffer after an Appender outgrew it. The larger
// array it returned may be its own memory, so take a fresh one of that size
// rather than adopt it.
func grow(n int) {
	out = nil
	out = make([]byte, 0, bufCap(n))
}

func reportError(err error) {
	code, msg := errorResult(err)
	hostResult(uint32(code), strPtr(msg), uint32(len(msg)))
	runtime.KeepAlive(msg)
}

// finish ends an export call: it drops references into the call's input and
// answers, and oversized buffers, so that the collector can reclaim them.
func finish() {
	reader.Reset(nil)
	hs.r.Reset(nil)
	clear(hs.recs)
	if cap(in) > batchBuf {
		in = nil
	}
	if cap(out) > largeBuf {
		out = nil
	}
	if cap(hs.buf) > largeBuf {
		hs.buf = nil
	}
}

// hostState is the State backed by the host functions.
type hostState struct {
	buf  []byte // answers of state_get and state_scan (valid until the next call)
	ver  uint64 // state_get writes the version here
	recs []abi.Record
	r    mp.Reader
}

// need makes s.buf at least n bytes long.
func (s *hostState) need(n int) {
	if n > cap(s.buf) {
		s.buf = nil
		s.buf = make([]byte, bufCap(n))
	}
}

func (s *hostState) Get(key []byte) ([]byte, uint64, bool) {
	if len(key) == 0 || len(key) > abi.MaxKeySize {
		return nil, 0, false
	}
	for {
		buf := s.buf[:cap(s.buf)]
		n := hostStateGet(ptrOf(key), uint32(len(key)), ptrOf(buf), uint32(len(buf)), uint32(uintptr(unsafe.Pointer(&s.ver))))
		runtime.KeepAlive(key)
		runtime.KeepAlive(buf)
		switch {
		case n < 0:
			return nil, 0, false
		case n <= int64(len(buf)):
			return buf[:n:n], s.ver, true
		case n > abi.MaxValueSize:
			panic(fmt.Sprintf("sdk: state_get returned %d bytes, over abi.MaxValueSize", n))
		}
		s.need(int(n))
	}
}

func (s *hostState) Set(key, value []byte) error {
	if len(key) == 0 || len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize {
		return checkSet(key, value)
	}
	rc := hostStateSet(ptrOf(key), uint32(len(key)), ptrOf(value), uint32(len(value)))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	if rc != 0 {
		return rcError(int64(rc))
	}
	return nil
}

func (s *hostState) Delete(key []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	rc := hostStateDelete(ptrOf(key), uint32(len(key)))
	runtime.KeepAlive(key)
	if rc < 0 {
		return false, rcError(int64(rc))
	}
	return rc == 1, nil
}

func (s *hostState) Scan(start, end []byte, limit int) ([]abi.Record, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	for {
		buf := s.buf[:cap(s.buf)]
		n := hostStateScan(ptrOf(start), uint32(len(start)), ptrOf(end), uint32(len(end)),
			uint32(limit), ptrOf(buf), uint32(len(buf)))
		runtime.KeepAlive(start)
		runtime.KeepAlive(end)
		runtime.KeepAlive(buf)
		switch {
		case n < 0:
			return nil, rcError(n)
		case n > MaxScanBytes:
			return nil, errScanTooLarge(n)
		case n <= int64(len(buf)):
			return s.decodeScan(buf[:n])
		}
		s.need(int(n))
	}
}

// decodeScan decodes a Record array in place: keys and values point into b.
func (s *hostState) decodeScan(b []byte) ([]abi.Record, error) {
	r := &s.r
	r.Reset(b)
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, errMalformedScan
	}
	clear(s.recs) // drop references into the previous answer
	s.recs = s.recs[:0]
	for i := 0; i < n; i++ {
		var rec abi.Record
		m, err := r.ReadArrayHeader()
		if err != nil || m < 3 {
			return nil, errMalformedScan
		}
		if rec.Key, err = r.ReadBytes(); err != nil {
			return nil, errMalformedScan
		}
		if rec.Value, err = readBytesOrNil(r); err != nil {
			return nil, errMalformedScan
		}
		if rec.Version, err = r.ReadUint64(); err != nil {
			return nil, errMalformedScan
		}
		for ; m > 3; m-- {
			if r.Skip() != nil {
				return nil, errMalformedScan
			}
		}
		s.recs = append(s.recs, rec)
	}
	return s.recs, nil
}

var errMalformedScan = &abi.Error{Code: abi.CodeInternal, Message: "malformed state_scan answer from the host"}

// CurrentEntry reports the entry the host is applying (see EntryOf).
func (s *hostState) CurrentEntry() Entry {
	return Entry{Index: uint64(hostEntryIndex()), Term: uint64(hostEntryTerm()), Time: hostEntryTime()}
}

// Log writes msg to the node's log at level (LevelDebug..LevelError). It has
// no effect on state or results.
func Log(level int, msg string) {
	hostLog(uint32(level), strPtr(msg), uint32(len(msg)))
	runtime.KeepAlive(msg)
}

// ptrOf returns the guest address of b's backing array (0 if it has none).
func ptrOf(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

func strPtr(s string) uint32 {
	if len(s) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s))))
}
