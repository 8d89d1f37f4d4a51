package sdk

import (
	"errors"
	"fmt"
	"time"

	"github.com/raftkv/raftkv/abi"
)

// State is a plugin's view of its namespace in the host's ordered key-value
// store. Keys compare as unsigned bytes; every key carries a version, the log
// index of the entry that last wrote it.
//
// Slices returned by Get and Scan (values, and the keys and values of records)
// are only valid until the next call of any State method: the SDK reuses its
// buffers so that reads do not allocate. Copy them (bytes.Clone) to keep them.
// Slices passed in are not retained.
type State interface {
	// Get returns the value and version of key; ok is false if key is absent
	// (an empty key, or one longer than abi.MaxKeySize, is always absent).
	Get(key []byte) (value []byte, version uint64, ok bool)
	// Set stores a copy of value under key, with the current entry's index as
	// its version. It fails with an *abi.Error: CodeBadRequest for an empty
	// key, CodeTooLarge for a key over abi.MaxKeySize or a value over
	// abi.MaxValueSize, CodeReadOnly during a query.
	Set(key, value []byte) error
	// Delete removes key and reports whether it existed. Errors as for Set.
	Delete(key []byte) (existed bool, err error)
	// Scan returns the records with start <= key < end in ascending key
	// order, at most limit of them (1 <= limit <= abi.MaxScanLimit, else an
	// *abi.Error with CodeBadRequest). A nil or empty end means no upper
	// bound. If the encoded answer would exceed MaxScanBytes, Scan returns an
	// *abi.Error with CodeTooLarge: ask for fewer records.
	Scan(start, end []byte, limit int) ([]abi.Record, error)
}

// MaxScanBytes bounds the MsgPack encoding of one Scan answer (the ABI's
// Record array), so that a scan over large values cannot exhaust the guest's
// memory (see SoftMemoryLimit). It fits at least one record of the largest
// key and value.
const MaxScanBytes = abi.MaxValueSize + 64<<10

// MaxBatchBytes is the largest batch (the encoded input of raftkv_apply) the
// wasm build of the SDK is sized for: room for one command of
// abi.MaxCommandSize, or many smaller ones. The guest holds a whole batch in
// one buffer of its small memory, so a host should split larger batches; a
// larger one may run out of memory, which traps.
const MaxBatchBytes = abi.MaxCommandSize + 64<<10

// SoftMemoryLimit is the Go memory limit (runtime/debug.SetMemoryLimit) that
// the wasm build of the SDK sets when the module starts. The guest's memory is
// capped by the host (512 pages, 32 MiB, by default; raftkv serve
// --plugin-memory-pages sets it for a cluster) and a wasm memory never
// shrinks, so the garbage collector must run before the heap nears the cap
// rather than at GOGC's usual twice the live heap. The SDK is sized to run in
// 16 MiB (256 pages), so that its plugins also run on clusters with half the
// default cap; a plugin that needs more, on clusters that give it, may raise
// the limit from its own init function, which runs after the SDK's.
const SoftMemoryLimit = 10 << 20

// PrefixEnd returns the end key of a scan over every key that starts with
// prefix: prefix with its last byte that is not 0xff incremented and the bytes
// after it dropped. It returns nil (no upper bound) if prefix is empty or all
// 0xff bytes.
func PrefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := make([]byte, i+1)
			copy(end, prefix)
			end[i]++
			return end
		}
	}
	return nil
}

// Entry is one committed log entry handed to Plugin.Apply.
type Entry struct {
	Index uint64 // Raft log index; the version of every key this entry writes
	Term  uint64 // Raft term
	Time  int64  // the leader's clock when it accepted the command, Unix ns
	// Data is the command as the client sent it. It points into the SDK's input
	// buffer and is only valid during Apply: copy it to keep it.
	Data []byte
}

// Now returns the entry's timestamp, the only clock a plugin may use: it is
// the same on every node.
func (e Entry) Now() time.Time { return time.Unix(0, e.Time).UTC() }

// Seed returns a pseudo-random seed derived from the entry's term and index,
// the same on every node and different for every entry:
// mix(mix(Term) ^ Index), where mix is the SplitMix64 step
// (z += 0x9e3779b97f4a7c15; z = (z^(z>>30))*0xbf58476d1ce4e5b9;
// z = (z^(z>>27))*0x94d049bb133111eb; z ^= z>>31).
func (e Entry) Seed() uint64 { return splitmix64(splitmix64(e.Term) ^ e.Index) }

func splitmix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// EntryOf returns the log entry being applied through st, without its Data:
// the same as Apply's Entry argument, the deploy entry during Migrate (which
// has no Entry argument; use this for its Now and Seed), and the zero Entry
// during a query. It works for the wasm State and MemState; for any other
// State it returns what st's CurrentEntry() Entry method reports, or the zero
// Entry if it has none.
func EntryOf(st State) Entry {
	if c, ok := st.(interface{ CurrentEntry() Entry }); ok {
		return c.CurrentEntry()
	}
	return Entry{}
}

// Plugin is a state machine. Apply runs once per committed entry, in log
// order, on every node; Query answers a read-only request against the local
// state. Both must be deterministic: their answer may depend only on the
// State, the Entry and the input bytes — no wall clock, randomness other than
// Entry.Seed, or data carried in memory from one call to the next.
//
// A returned error that is (errors.As) an *abi.Error reports its Code and
// Message; any other error reports abi.CodeInternal with err.Error(). An
// error result makes the host undo every write of the entry.
//
// The SDK does not recover panics: a panic in a plugin aborts the module (a
// trap), and the host undoes the entry's writes, records it with
// abi.CodeTrap and continues on a fresh instance.
type Plugin interface {
	Apply(st State, e Entry) ([]byte, error)
	Query(st State, q []byte) ([]byte, error)
}

// Appender is an optional, allocation-free form of Plugin. When the
// registered plugin implements it, the SDK calls AppendApply and AppendQuery
// instead of Apply and Query, with dst a reusable buffer of length 0: append
// the result to it and return the extended slice. The result is consumed
// before the next call; the SDK keeps dst's backing array for later calls.
type Appender interface {
	AppendApply(dst []byte, st State, e Entry) ([]byte, error)
	AppendQuery(dst []byte, st State, q []byte) ([]byte, error)
}

// Migrator is implemented by plugins that transform the state left by an
// earlier version of themselves. Migrate runs once, when this module replaces
// the earlier one, at the log index of the deploy; an error rejects the
// upgrade (its writes are discarded and the old module stays active).
// Without a Migrator an upgrade is always accepted.
type Migrator interface {
	Migrate(st State, m abi.Migration) error
}

// Describer is implemented by plugins that report a name and version
// (raftkv_info). It is optional: a plugin without it reports an empty
// abi.Info, has no version, and is known by the name it is deployed under.
type Describer interface {
	Info() abi.Info
}

var registered Plugin

// Register makes p the module's state machine. Call it once, from an init
// function of the plugin's main package: the WASI reactor runs init functions
// when the host calls _initialize, and never runs main. Register panics if p
// is nil or if a plugin is already registered.
func Register(p Plugin) {
	if p == nil {
		panic("sdk: Register(nil)")
	}
	if registered != nil {
		panic("sdk: Register called twice")
	}
	registered = p
}

// Errorf returns an *abi.Error with code and a formatted message. Return it
// from Apply, Query or Migrate to report that code.
func Errorf(code abi.Code, format string, args ...any) error {
	return &abi.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Log levels for Log.
const (
	LevelDebug = abi.LogDebug
	LevelInfo  = abi.LogInfo
	LevelWarn  = abi.LogWarn
	LevelError = abi.LogError
)

// errNoPlugin is reported for every call when no plugin is registered.
var errNoPlugin = &abi.Error{Code: abi.CodeInternal, Message: "no plugin registered: call sdk.Register from an init function"}

// errorResult converts an error returned by plugin code into a result code and
// message.
func errorResult(err error) (abi.Code, string) {
	ae, ok := err.(*abi.Error)
	if !ok && !errors.As(err, &ae) {
		return abi.CodeInternal, err.Error()
	}
	if ae == nil {
		return abi.CodeInternal, "plugin returned a nil *abi.Error"
	}
	if ae.Code == abi.CodeOK || ae.Code > 255 {
		return abi.CodeInternal, fmt.Sprintf("plugin returned an error with invalid code %d: %s", uint32(ae.Code), ae.Message)
	}
	return ae.Code, ae.Message
}

// callApply runs the plugin's apply logic, appending to dst when it can.
func callApply(p Plugin, dst []byte, st State, e Entry) ([]byte, error) {
	if a, ok := p.(Appender); ok {
		return a.AppendApply(dst, st, e)
	}
	return p.Apply(st, e)
}

// callQuery runs the plugin's query logic, appending to dst when it can.
func callQuery(p Plugin, dst []byte, st State, q []byte) ([]byte, error) {
	if a, ok := p.(Appender); ok {
		return a.AppendQuery(dst, st, q)
	}
	return p.Query(st, q)
}

// Errors of State methods, shared by every State implementation of this
// package so that a plugin sees the same messages natively and in wasm.
var (
	errEmptyKey = &abi.Error{Code: abi.CodeBadRequest, Message: "empty key"}
	errReadOnly = &abi.Error{Code: abi.CodeReadOnly, Message: "state is read-only during a query"}
	errNoEntry  = &abi.Error{Code: abi.CodeInternal, Message: "state write after the entry's result was reported"}
	errBadArg   = &abi.Error{Code: abi.CodeBadRequest, Message: "bad argument to a state function"}
)

func checkKey(key []byte) error {
	if len(key) == 0 {
		return errEmptyKey
	}
	if len(key) > abi.MaxKeySize {
		return Errorf(abi.CodeTooLarge, "key too large: %d bytes (max %d)", len(key), abi.MaxKeySize)
	}
	return nil
}

// checkSet returns the error of a Set with these arguments, or nil.
func checkSet(key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return checkValue(value)
}

func checkValue(value []byte) error {
	if len(value) > abi.MaxValueSize {
		return Errorf(abi.CodeTooLarge, "value too large: %d bytes (max %d)", len(value), abi.MaxValueSize)
	}
	return nil
}

func checkLimit(limit int) error {
	if limit < 1 || limit > abi.MaxScanLimit {
		return Errorf(abi.CodeBadRequest, "scan limit %d out of range 1..%d", limit, abi.MaxScanLimit)
	}
	return nil
}

func errScanTooLarge(n int64) error {
	return Errorf(abi.CodeTooLarge, "scan answer too large: %d bytes (max %d); ask for fewer records", n, MaxScanBytes)
}

// rcError converts a negative host return code into an error.
func rcError(rc int64) error {
	switch rc {
	case abi.RcTooLarge:
		return &abi.Error{Code: abi.CodeTooLarge, Message: "key or value too large"}
	case abi.RcReadOnly:
		return errReadOnly
	case abi.RcNoEntry:
		return errNoEntry
	case abi.RcBadArg:
		return errBadArg
	}
	return Errorf(abi.CodeInternal, "host returned unknown code %d", rc)
}

// Validator is implemented by plugins that can tell a malformed command from
// its bytes alone. The leader calls ValidateCommand before it proposes a
// command (raftkv_validate, ABI.md), so an error refuses the command with
// its code (400 over HTTP for abi.CodeBadRequest) before it reaches the log.
// It must be pure: it sees only the command, no state and no entry, and
// must not depend on anything else, since a command it accepts is applied
// later by Apply, which still checks everything against the state.
type Validator interface {
	ValidateCommand(cmd []byte) error
}
