package plugin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// ReadStore is the state a query reads. host/state's views implement it.
type ReadStore interface {
	Get(key []byte) (value []byte, version uint64, ok bool)
	// Scan visits keys in [start, end) in order (empty end: unbounded), at most
	// limit of them, until fn returns false.
	Scan(start, end []byte, limit int, fn func(key, value []byte, version uint64) bool)
}

// Store is the state an apply or migration reads and writes. Begin starts an
// entry; Commit keeps its writes and Rollback undoes them.
type Store interface {
	ReadStore
	Set(key, value []byte, version uint64)
	Delete(key []byte) bool
	Begin()
	Commit()
	Rollback()
	// Len and Bytes are the namespace's number of keys and the sum of their
	// keys' and values' lengths (the namespace quotas of Limits).
	Len() int
	Bytes() int64
}

type mode uint8

const (
	modeIdle mode = iota
	modeApply
	modeQuery
	modeMigrate
	modeInfo
	modeValidate // raftkv_validate: no state, no entry
)

// trap is panicked by host functions to abort the guest; wazero returns it
// wrapped from the guest call.
type trap struct{ msg string }

func (t *trap) Error() string { return t.msg }

func trapf(format string, args ...any) { panic(&trap{fmt.Sprintf(format, args...)}) }

// call is the per-instance state host functions act on. It lives in the
// context of every guest call (see callKey).
type call struct {
	mode    mode
	store   Store     // apply, migrate
	read    ReadStore // every mode but info
	entries []abi.Entry
	next    int // index in entries of the entry awaiting its result
	results []abi.Result
	single  *abi.Result // query, migrate, info
	meta    abi.Entry   // migrate: the deploy entry
	arena   []byte      // result payloads of the current call
	recs    []scanRec

	m       *Module
	r       *Runtime
	out     *guestOutput
	fuel    api.MutableGlobal // the live instance's fuel counter; nil if unmetered
	stack   api.MutableGlobal // its call-stack budget; nil if unmetered
	timer   *time.Timer       // the wall-clock limit of the current operation; nil if none
	timeout time.Duration
	budget  uint64 // fuel of the current entry or call

	// Per entry or call (reset by begin).
	quota   quota         // the write quotas
	logLeft uint64        // log bytes left (Limits.MaxLogBytes)
	clock   int64         // nanoseconds the clocks advanced (sleeps, reads)
	rng     *rand.ChaCha8 // random source, seeded on first use
}

type scanRec struct {
	key, value []byte
	version    uint64
}

type callKey struct{}

func newCall(m *Module, r *Runtime) *call {
	c := &call{m: m, r: r}
	c.out = &guestOutput{c: c}
	return c
}

func (c *call) reset() {
	c.mode, c.store, c.read, c.entries, c.next = modeIdle, nil, nil, nil, 0
	c.results, c.single = nil, nil
}

// startCall prepares a guest call (see begin) with a full call-stack budget.
func (c *call) startCall(fuel uint64) {
	if c.stack != nil {
		c.stack.Set(StackSlots)
	}
	c.begin(fuel)
}

// begin starts an entry, or a call that is not an apply, with fuel: it sets
// the fuel counter, re-arms the wall-clock limit and resets the per-entry
// quotas, clocks, random source and output. (The call-stack budget is the
// call's: an entry starts at the depth where the previous one reported its
// result.)
func (c *call) begin(fuel uint64) {
	c.budget = fuel
	if c.fuel != nil {
		c.fuel.Set(fuel)
	}
	if c.timer != nil {
		c.timer.Reset(c.timeout)
	}
	c.quota = quota{lim: &c.m.Limits}
	c.logLeft, c.clock, c.rng = c.m.Limits.MaxLogBytes, 0, nil
	c.out.newEntry()
}

// account records the fuel the current entry or call used, at its result.
func (c *call) account() {
	if c.fuel == nil {
		return
	}
	used := c.budget - min(c.budget, c.fuel.Get())
	c.m.counters.FuelUsed.Add(used)
	for {
		old := c.m.counters.MaxFuelUsed.Load()
		if used <= old || c.m.counters.MaxFuelUsed.CompareAndSwap(old, used) {
			return
		}
	}
}

// Host functions charge fuel for the work they do on the guest's behalf:
// hostCallCost per call plus one unit per byte they move (ABI.md, section 5).
const (
	hostCallCost   = 50
	scanRecordCost = 20
)

// charge takes n units of fuel and traps if the fuel runs out. Unmetered
// modules are not charged.
func (c *call) charge(n uint64) {
	if c.fuel == nil {
		return
	}
	left := int64(c.fuel.Get()) - int64(min(n, 1<<62))
	c.fuel.Set(uint64(left))
	if left < 0 {
		panic(&trap{"out of fuel"})
	}
}

// result copies a guest payload into the call's arena.
func (c *call) result(code uint32, payload []byte) abi.Result {
	start := len(c.arena)
	c.arena = append(c.arena, payload...)
	return abi.Result{Code: abi.Code(code), Data: c.arena[start:len(c.arena):len(c.arena)]}
}

// writable returns the store if the current call may write, or an Rc code.
func (c *call) writable() (Store, int32) {
	switch c.mode {
	case modeApply:
		if c.next >= len(c.entries) {
			return nil, abi.RcNoEntry
		}
		return c.store, abi.RcOK
	case modeMigrate:
		if c.single != nil {
			return nil, abi.RcNoEntry
		}
		return c.store, abi.RcOK
	case modeQuery:
		return nil, abi.RcReadOnly
	}
	trapf("state written outside of apply, query or migrate")
	return nil, 0
}

func (c *call) reader() ReadStore {
	if c.read == nil {
		trapf("state read outside of apply, query or migrate")
	}
	return c.read
}

func (c *call) entry() *abi.Entry {
	switch c.mode {
	case modeApply:
		if c.next < len(c.entries) {
			return &c.entries[c.next]
		}
	case modeMigrate:
		return &c.meta
	}
	return nil
}

// read returns guest memory [ptr, ptr+n) or traps.
func read(m api.Module, ptr, n uint32, what string) []byte {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		trapf("%s: range [%d, %d+%d) is outside guest memory (%d bytes)", what, ptr, ptr, n, m.Memory().Size())
	}
	return b
}

func rc(stack []uint64, v int64) { stack[0] = uint64(v) }

// hostFunc adapts f to wazero, fetching the call state from the context. A
// call costs hostCallCost fuel, and traps if the fuel ran out before it
// (metered code checks its fuel only at loop starts and function entries).
func hostFunc(f func(c *call, m api.Module, stack []uint64)) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, stack []uint64) {
		c, _ := ctx.Value(callKey{}).(*call)
		if c == nil {
			trapf("host function called outside of a raftkv call")
		}
		c.charge(hostCallCost)
		f(c, m, stack)
	}
}

func stateGet(c *call, m api.Module, s []uint64) {
	kptr, klen, vptr, vcap, verptr := uint32(s[0]), uint32(s[1]), uint32(s[2]), uint32(s[3]), uint32(s[4])
	c.charge(uint64(min(klen, abi.MaxKeySize)))
	if klen > abi.MaxKeySize {
		rc(s, abi.RcTooLarge)
		return
	}
	v, ver, ok := c.reader().Get(read(m, kptr, klen, "state_get key"))
	c.charge(uint64(len(v)))
	if !ok {
		rc(s, -1)
		return
	}
	if verptr != 0 && !m.Memory().WriteUint64Le(verptr, ver) {
		trapf("state_get: version pointer %d is outside guest memory", verptr)
	}
	if uint32(len(v)) <= vcap && !m.Memory().Write(vptr, v) {
		trapf("state_get: value buffer [%d, %d+%d) is outside guest memory", vptr, vptr, len(v))
	}
	rc(s, int64(len(v)))
}

func stateSet(c *call, m api.Module, s []uint64) {
	kptr, klen, vptr, vlen := uint32(s[0]), uint32(s[1]), uint32(s[2]), uint32(s[3])
	st, code := c.writable()
	switch {
	case code != abi.RcOK:
	case klen == 0:
		code = abi.RcBadArg
	case klen > abi.MaxKeySize || vlen > abi.MaxValueSize:
		code = abi.RcTooLarge
	default:
		c.charge(uint64(klen) + uint64(vlen))
		key, val := read(m, kptr, klen, "state_set key"), read(m, vptr, vlen, "state_set value")
		if c.quota.allowSet(st, key, val) {
			st.Set(key, val, c.entry().Index)
		} else {
			code = abi.RcTooLarge
		}
	}
	rc(s, int64(code))
}

func stateDelete(c *call, m api.Module, s []uint64) {
	kptr, klen := uint32(s[0]), uint32(s[1])
	c.charge(uint64(min(klen, abi.MaxKeySize)))
	st, code := c.writable()
	switch {
	case code != abi.RcOK:
		rc(s, int64(code))
	case klen == 0:
		rc(s, abi.RcBadArg)
	case klen > abi.MaxKeySize:
		rc(s, abi.RcTooLarge)
	case !c.quota.allowWrite(uint64(klen)):
		rc(s, abi.RcTooLarge)
	case st.Delete(read(m, kptr, klen, "state_delete key")):
		rc(s, 1)
	default:
		rc(s, 0)
	}
}

func stateScan(c *call, m api.Module, s []uint64) {
	sptr, slen, eptr, elen := uint32(s[0]), uint32(s[1]), uint32(s[2]), uint32(s[3])
	limit, bufptr, bufcap := int32(s[4]), uint32(s[5]), uint32(s[6])
	c.charge(uint64(min(slen, abi.MaxKeySize)) + uint64(min(elen, abi.MaxKeySize)))
	if limit < 1 || limit > abi.MaxScanLimit {
		rc(s, abi.RcBadArg)
		return
	}
	if slen > abi.MaxKeySize || elen > abi.MaxKeySize {
		rc(s, abi.RcTooLarge)
		return
	}
	start, end := read(m, sptr, slen, "state_scan start"), read(m, eptr, elen, "state_scan end")
	// The answer's size is computed from the records' lengths; the records
	// are encoded only when they fit the guest's buffer, and then straight
	// into it. A scan of many large values into a small buffer therefore
	// costs the host nothing but the visit (at most limit records).
	c.recs = c.recs[:0]
	var n int64
	c.reader().Scan(start, end, int(limit), func(k, v []byte, ver uint64) bool {
		c.recs = append(c.recs, scanRec{k, v, ver})
		n += recordSize(k, v, ver)
		return true
	})
	n += int64(mp.ArrayHeaderSize(len(c.recs)))
	c.charge(scanRecordCost * uint64(len(c.recs)))
	if n <= int64(bufcap) {
		c.charge(uint64(n)) // only what is copied: asking for the size is cheap
		buf, ok := m.Memory().Read(bufptr, uint32(n))
		if !ok {
			trapf("state_scan: buffer [%d, %d+%d) is outside guest memory", bufptr, bufptr, n)
		}
		b := mp.AppendArrayHeader(buf[:0], len(c.recs))
		for _, r := range c.recs {
			b = appendRecord(b, r)
		}
		if int64(len(b)) != n || (n > 0 && &b[0] != &buf[0]) {
			trapf("state_scan: host bug: encoded %d bytes, computed %d", len(b), n)
		}
	}
	clear(c.recs) // drop references to store memory
	rc(s, n)
}

// recordSize is the encoded size of a Record [key bin, value bin, version
// uint]; a nil value is encoded as nil, as the msgpack package does.
func recordSize(k, v []byte, ver uint64) int64 {
	vs := 1
	if v != nil {
		vs = mp.BinSize(len(v))
	}
	return int64(1 + mp.BinSize(len(k)) + vs + mp.UintSize(ver))
}

func appendRecord(b []byte, r scanRec) []byte {
	b = mp.AppendArrayHeader(b, 3)
	b = mp.AppendBytes(b, r.key)
	if r.value == nil {
		b = mp.AppendNil(b)
	} else {
		b = mp.AppendBytes(b, r.value)
	}
	return mp.AppendUint(b, r.version)
}

func result(c *call, m api.Module, s []uint64) {
	code, ptr, n := uint32(s[0]), uint32(s[1]), uint32(s[2])
	var r abi.Result
	switch {
	case c.quota.broken != "":
		// The entry broke a quota: whatever it reports, it changed nothing.
		c.m.counters.QuotaExceeded.Add(1)
		r = c.result(uint32(abi.CodeTooLarge), []byte(c.quota.broken))
	case n > abi.MaxResultSize:
		r = abi.Result{Code: abi.CodeTooLarge, Data: fmt.Appendf(nil, "result of %d bytes exceeds the %d-byte limit", n, abi.MaxResultSize)}
	default:
		c.charge(uint64(n))
		r = c.result(code, read(m, ptr, n, "result payload"))
	}
	c.account()
	switch c.mode {
	case modeApply:
		if c.next >= len(c.entries) {
			trapf("result called %d times for a batch of %d entries", c.next+1, len(c.entries))
		}
		if r.Code == abi.CodeOK {
			c.store.Commit()
		} else {
			c.store.Rollback()
		}
		c.results = append(c.results, r)
		c.next++
		if c.next < len(c.entries) {
			c.begin(c.m.Limits.ApplyFuel)
			c.store.Begin()
		}
	case modeQuery, modeMigrate, modeInfo, modeValidate:
		if c.single != nil {
			trapf("result called twice")
		}
		c.single = &r
	default:
		trapf("result called outside of a raftkv call")
	}
}

func logMsg(c *call, m api.Module, s []uint64) {
	level, ptr, n := int32(s[0]), uint32(s[1]), uint32(s[2])
	if uint64(n) > c.logLeft {
		c.m.counters.LogBytesDropped.Add(uint64(n) - c.logLeft)
		n = uint32(c.logLeft)
	}
	c.charge(uint64(n))
	msg := read(m, ptr, n, "log message")
	lvl := slog.LevelInfo
	switch level {
	case abi.LogDebug:
		lvl = slog.LevelDebug
	case abi.LogWarn:
		lvl = slog.LevelWarn
	case abi.LogError:
		lvl = slog.LevelError
	}
	if msg = bytes.TrimRight(c.takeLog(msg), "\n"); len(msg) > 0 {
		c.m.emit(c.quiet(), lvl, string(msg), "log")
	}
}

// takeLog returns the part of msg the entry's log budget (Limits.MaxLogBytes)
// still allows, counting the rest as dropped.
func (c *call) takeLog(msg []byte) []byte {
	n := uint64(len(msg))
	if n > c.logLeft {
		c.m.counters.LogBytesDropped.Add(n - c.logLeft)
		n = c.logLeft
	}
	c.logLeft -= n
	return msg[:n]
}

// quiet reports whether the current output belongs to a replayed entry (an
// index up to Runtime.SetQuietThrough's): it is then suppressed. Queries are
// never replayed; the module's initialiser and info count as part of the
// entry that loaded the module (LoadOptions.Index).
func (c *call) quiet() bool {
	q := c.r.quiet.Load()
	switch {
	case q == 0 || c.mode == modeQuery || c.mode == modeValidate:
		return false
	case c.entry() != nil:
		return c.entry().Index <= q
	}
	return c.m.index != 0 && c.m.index <= q
}

func entryIndex(c *call, _ api.Module, s []uint64) {
	if e := c.entry(); e != nil {
		s[0] = e.Index
		return
	}
	s[0] = 0
}

func entryTerm(c *call, _ api.Module, s []uint64) {
	if e := c.entry(); e != nil {
		s[0] = e.Term
		return
	}
	s[0] = 0
}

func entryTime(c *call, _ api.Module, s []uint64) {
	if e := c.entry(); e != nil {
		s[0] = uint64(e.Time)
		return
	}
	s[0] = 0
}

// hostFuncDef describes one host function of the raftkv import module.
type hostFuncDef struct {
	name    string
	fn      func(*call, api.Module, []uint64)
	params  []api.ValueType
	results []api.ValueType
}

var hostFuncs = []hostFuncDef{
	{abi.FnStateGet, stateGet, i32s(5), []api.ValueType{api.ValueTypeI64}},
	{abi.FnStateSet, stateSet, i32s(4), i32s(1)},
	{abi.FnStateDelete, stateDelete, i32s(2), i32s(1)},
	{abi.FnStateScan, stateScan, i32s(7), []api.ValueType{api.ValueTypeI64}},
	{abi.FnResult, result, i32s(3), nil},
	{abi.FnLog, logMsg, i32s(3), nil},
	{abi.FnEntryIndex, entryIndex, nil, []api.ValueType{api.ValueTypeI64}},
	{abi.FnEntryTerm, entryTerm, nil, []api.ValueType{api.ValueTypeI64}},
	{abi.FnEntryTime, entryTime, nil, []api.ValueType{api.ValueTypeI64}},
}

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = api.ValueTypeI32
	}
	return t
}

func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.ImportModule)
	for _, h := range hostFuncs {
		b.NewFunctionBuilder().WithGoModuleFunction(hostFunc(h.fn), h.params, h.results).Export(h.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("plugin: host module: %w", err)
	}
	return nil
}
