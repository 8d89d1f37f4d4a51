package abi

import "fmt"

// Version is the ABI version this package describes: the major version,
// carried by the module's marker export. A module built for another major
// version is refused.
const Version = 1

// Minor is the revision of ABI v1 this package describes (ABI.md,
// Versioning): additions that older hosts ignore and older modules need not
// provide. 1: raftkv_validate and the info flags; 2: raftkv_input_buffer.
const Minor = 2

// Exports a plugin module provides. See ABI.md for signatures and semantics.
const (
	// ExportMarker is the version marker: an exported function `() -> ()` that
	// is never called. Its name carries the ABI version.
	ExportMarker = "raftkv_abi_v1"
	// ExportMarkerPrefix prefixes every version marker (raftkv_abi_v<N>).
	ExportMarkerPrefix = "raftkv_abi_v"
	// ExportAlloc: (size i32) -> (ptr i32). Returns a guest buffer of at least
	// size bytes that the host may write into until the next guest call.
	ExportAlloc = "raftkv_alloc"
	// ExportApply: (ptr i32, len i32) -> (). Applies a batch of committed
	// entries encoded as a MsgPack Batch at [ptr, ptr+len).
	ExportApply = "raftkv_apply"
	// ExportQuery: (ptr i32, len i32) -> (). Answers a read-only query whose
	// raw bytes are at [ptr, ptr+len).
	ExportQuery = "raftkv_query"
	// ExportMigrate (optional): (ptr i32, len i32) -> (). Runs once when this
	// module replaces an earlier version; input is a MsgPack Migration.
	ExportMigrate = "raftkv_migrate"
	// ExportInfo (optional): () -> (). Reports a MsgPack Info through the
	// result host function.
	ExportInfo = "raftkv_info"
	// ExportValidate (optional, ABI v1 addition): (ptr i32, len i32) -> ().
	// Checks a command's bytes, without state, before the leader proposes
	// it; a non-zero result refuses the command.
	ExportValidate = "raftkv_validate"
	// ExportInputBuffer (optional, ABI v1.2): () -> (i64). The guest's
	// reusable input buffer, capacity<<32 | pointer (capacity 0: none). The
	// host asks once per instance and writes every input that fits there
	// instead of calling raftkv_alloc.
	ExportInputBuffer = "raftkv_input_buffer"
	// ExportInitialize is the WASI reactor initialiser (Go c-shared, clang
	// reactors). The host calls it once per instance if it is exported.
	ExportInitialize = "_initialize"
	// ExportMemory is the guest memory the host reads and writes.
	ExportMemory = "memory"
)

// ImportModule is the module name of every host function.
const ImportModule = "raftkv"

// Host functions (all in module ImportModule). Pointers and lengths are i32
// offsets into the guest's exported memory.
const (
	// FnStateGet: (kptr, klen, vptr, vcap, verptr i32) -> (n i64).
	// n = -1: the key is absent. Otherwise n is the value length; the value is
	// written at vptr only if n <= vcap. If verptr != 0 the key's version is
	// written there as a little-endian u64 whenever the key exists.
	FnStateGet = "state_get"
	// FnStateSet: (kptr, klen, vptr, vlen i32) -> (rc i32). rc = 0 or an Rc* code.
	FnStateSet = "state_set"
	// FnStateDelete: (kptr, klen i32) -> (rc i32). rc = 1 deleted, 0 absent, or an Rc* code.
	FnStateDelete = "state_delete"
	// FnStateScan: (sptr, slen, eptr, elen, limit, bufptr, bufcap i32) -> (n i64).
	// Ordered scan of keys k with start <= k < end (elen = 0: no upper bound),
	// at most limit records. n is the size of the MsgPack-encoded []Record; the
	// records are written at bufptr only if n <= bufcap. n < 0 is an Rc* code.
	FnStateScan = "state_scan"
	// FnResult: (code, ptr, len i32) -> (). Reports the outcome of the current
	// entry (apply), of the query, of the migration or of info. Code 0 is
	// success with a plugin-defined payload; any other Code is an error whose
	// payload is a UTF-8 message.
	FnResult = "result"
	// FnLog: (level, ptr, len i32) -> (). Writes a UTF-8 message to the node's log.
	FnLog = "log"
	// FnEntryIndex, FnEntryTerm: () -> (i64): the Raft index and term of the
	// entry being applied (0 during a query).
	FnEntryIndex = "entry_index"
	FnEntryTerm  = "entry_term"
	// FnEntryTime: () -> (i64): the leader's timestamp of the entry being
	// applied, Unix nanoseconds. The same on every node.
	FnEntryTime = "entry_time"
)

// Return codes of host functions (negative so they never collide with sizes).
const (
	RcOK       = 0
	RcTooLarge = -2 // a key, value or result exceeds its limit
	RcReadOnly = -3 // a write was attempted during a query
	RcNoEntry  = -4 // a write or result outside of an entry (all results already reported)
	RcBadArg   = -5 // an empty key or an invalid range or limit
)

// Log levels for FnLog.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// Size limits. The host rejects anything larger: a command or query larger
// than MaxCommandSize is refused before it reaches the log.
const (
	MaxKeySize     = 4 << 10  // 4 KiB
	MaxValueSize   = 1 << 20  // 1 MiB
	MaxResultSize  = 4 << 20  // 4 MiB per result payload
	MaxCommandSize = 2 << 20  // 2 MiB per command or query
	MaxScanLimit   = 10000    // records per state_scan call
	MaxModuleSize  = 32 << 20 // 32 MiB per .wasm module
	// MaxBatchBytes bounds the encoding of one raftkv_apply input: the host
	// splits larger batches, and sends an entry that alone exceeds it on its own.
	MaxBatchBytes = 2<<20 + 64<<10
)

// Code is a result code reported by a plugin (through FnResult) or assigned by
// the host. Codes 1-63 are reserved for this ABI; plugins may use 64-255 for
// their own errors.
type Code uint32

const (
	CodeOK         Code = 0
	CodeBadRequest Code = 1 // malformed command or query, unknown operation
	CodeNotFound   Code = 2 // the key or object does not exist
	CodeConflict   Code = 3 // a precondition (compare-and-set) failed
	CodeTooLarge   Code = 4 // an input or output exceeds a limit
	CodeInternal   Code = 5 // the plugin failed in a way it detected itself
	CodeTrap       Code = 6 // assigned by the host: the plugin trapped (panic, out-of-bounds access, out of memory)
	CodeNoResult   Code = 7 // assigned by the host: the plugin returned without reporting a result
	CodeReadOnly   Code = 8 // a query attempted to write
	CodeOutOfFuel  Code = 9 // assigned by the host: the entry or query used up its fuel budget
)

var codeNames = map[Code]string{
	CodeOK: "ok", CodeBadRequest: "bad_request", CodeNotFound: "not_found",
	CodeConflict: "conflict", CodeTooLarge: "too_large", CodeInternal: "internal",
	CodeTrap: "trap", CodeNoResult: "no_result", CodeReadOnly: "read_only",
	CodeOutOfFuel: "out_of_fuel",
}

// String returns the code's stable snake_case name ("plugin_<n>" for plugin codes).
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("plugin_%d", uint32(c))
}

// Entry is one committed command handed to a plugin. Encoded as a MsgPack
// array [index, term, time, data].
type Entry struct {
	_msgpack struct{} `msgpack:",as_array"`
	Index    uint64   // Raft log index
	Term     uint64   // Raft term
	Time     int64    // leader timestamp, Unix nanoseconds
	Data     []byte   // the command bytes the client sent
}

// Batch is the input of raftkv_apply: a MsgPack array of Entry, in log order.
type Batch []Entry

// Result is the outcome of one entry or query.
type Result struct {
	_msgpack struct{} `msgpack:",as_array"`
	Code     Code
	Data     []byte // payload when Code is CodeOK, UTF-8 message otherwise
}

// OK reports whether the result is a success.
func (r Result) OK() bool { return r.Code == CodeOK }

// Err returns nil for a success and an *Error otherwise.
func (r Result) Err() error {
	if r.Code == CodeOK {
		return nil
	}
	return &Error{Code: r.Code, Message: string(r.Data)}
}

// Error is a non-OK Result as a Go error.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return "plugin: " + e.Code.String() + ": " + e.Message }

// Is makes errors.Is(err, &Error{Code: c}) match any error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Record is one key of a state_scan answer. Encoded as a MsgPack array
// [key, value, version].
type Record struct {
	_msgpack struct{} `msgpack:",as_array"`
	Key      []byte
	Value    []byte
	Version  uint64 // log index of the key's last write
}

// Migration is the input of raftkv_migrate. Encoded as a MsgPack map.
type Migration struct {
	FromHash    string `msgpack:"from_hash"`    // sha256 (hex) of the module being replaced
	FromVersion string `msgpack:"from_version"` // its Info.Version, if it reported one
	Index       uint64 `msgpack:"index"`        // log index of the deploy entry
}

// Info describes a plugin; reported by raftkv_info. Encoded as a MsgPack map.
type Info struct {
	Name        string `msgpack:"name"`
	Version     string `msgpack:"version"`
	Description string `msgpack:"description,omitempty"`
	// Migrate, when false, says the module's raftkv_migrate does nothing
	// (an SDK that exports it for every plugin reports this); nil or true:
	// the module has a migration if it exports raftkv_migrate.
	Migrate *bool `msgpack:"migrate,omitempty"`
	// Validate, when false, says the module's raftkv_validate accepts
	// everything (an SDK that exports it for every plugin reports this):
	// the host then does not call it.
	Validate *bool `msgpack:"validate,omitempty"`
}
