package kvstore

import (
	"bytes"
	"strconv"

	"github.com/raftkv/raftkv/abi/mp"
)

// Limits of the LIST query.
const (
	DefaultListLimit = 100   // items per LIST when the query has no limit
	MaxListLimit     = 10000 // the largest limit a LIST accepts
	// MaxListBytes bounds the encoded items of one LIST answer: LIST returns
	// fewer items than its limit (with next set) rather than more bytes than
	// this, except that the first item is always returned. An answer is thus
	// at most about the size of the largest value, which keeps it well under
	// abi.MaxResultSize and within a plugin's small memory.
	MaxListBytes = 1 << 20
)

// Op is an operation name. On the wire it is a string, matched ignoring ASCII
// case and sent in upper case.
type Op uint8

// Operations. SET, DELETE, CAS and TXN are commands; GET is a query and also
// a command (a read through the log); LIST is a query.
const (
	OpSet Op = iota + 1
	OpDelete
	OpCAS
	OpTxn
	OpGet
	OpList
)

var opNames = [...]string{OpSet: "SET", OpDelete: "DELETE", OpCAS: "CAS", OpTxn: "TXN", OpGet: "GET", OpList: "LIST"}

func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// ParseOp returns the Op named s, ignoring ASCII case.
func ParseOp(s string) (Op, bool) {
	o := lookupOp([]byte(s))
	return o, o != 0
}

// Command is a command of the KV protocol (the data of a log entry).
//
//	SET    {"op":"SET","key":k,"value":v}              → SetResult
//	DELETE {"op":"DELETE","key":k[,"version":n]}       → DeleteResult
//	CAS    {"op":"CAS","key":k,"value":v,"version":n}  → SetResult
//	TXN    {"op":"TXN","ops":[SET|DELETE|CAS, ...]}     → TxnResult
//	GET    {"op":"GET","key":k}                        → GetResult
//
// See the package documentation for the exact rules. The zero-copy decoders
// (ParseCommand, UnmarshalMsgpack) leave Key and Value aliasing their input.
type Command struct {
	Op    Op
	Key   []byte
	Value []byte // SET, CAS
	// Version is the expected current version of Key for CAS (0: the key
	// must be absent) and, when HasVersion is set, for DELETE.
	Version    uint64
	HasVersion bool      // always true for a decoded CAS
	Ops        []Command // TXN
}

// AppendMsgpack appends the command's canonical encoding to dst: field
// order op, key, value, version (ops for TXN); bin keys and values; only the
// fields the op uses. It does not check the command: ParseCommand does.
func (c Command) AppendMsgpack(dst []byte) []byte {
	switch c.Op {
	case OpTxn:
		dst = mp.AppendArrayHeader(appendTxnHead(dst), len(c.Ops))
		for _, op := range c.Ops {
			dst = op.AppendMsgpack(dst)
		}
		return dst
	case OpSet:
		return append(appendSetHead(dst, c.Op, c.Key, len(c.Value)), c.Value...)
	case OpCAS:
		dst = append(appendSetHead(dst, c.Op, c.Key, len(c.Value)), c.Value...)
		return AppendCASVersion(dst, c.Version)
	case OpDelete:
		return appendDelete(dst, c.Key, c.Version, c.HasVersion)
	}
	return appendKeyed(dst, c.Op, c.Key, 2)
}

// MarshalMsgpack implements msgpack.Marshaler with AppendMsgpack.
func (c Command) MarshalMsgpack() ([]byte, error) { return c.AppendMsgpack(nil), nil }

// UnmarshalMsgpack implements msgpack.Unmarshaler with ParseCommand (on a
// copy of b).
func (c *Command) UnmarshalMsgpack(b []byte) error {
	cmd, err := ParseCommand(bytes.Clone(b))
	if err != nil {
		return err
	}
	*c = cmd
	return nil
}

// ParseCommand decodes and checks a command exactly as the plugin does before
// executing it: an invalid command gets the *abi.Error the plugin would
// report (CodeBadRequest or CodeTooLarge). Use it to reject a bad request
// before it reaches the log. Key and Value alias data.
func ParseCommand(data []byte) (Command, error) {
	var c command
	if err := decodeCommand(data, &c); err != nil {
		return Command{}, err
	}
	out := Command{Op: c.op, Key: c.key, Value: c.value, Version: c.version, HasVersion: c.hasVersion}
	if c.op == OpTxn {
		out.Ops = make([]Command, 0, txnLen(c.ops))
		err := forEachOp(c.ops, func(_ int, op *command) error {
			out.Ops = append(out.Ops, Command{Op: op.op, Key: op.key, Value: op.value, Version: op.version, HasVersion: op.hasVersion})
			return nil
		})
		if err != nil {
			return Command{}, err
		}
	}
	return out, nil
}

// Query is a query of the KV protocol.
//
//	GET  {"op":"GET","key":k}                                                  → GetResult
//	LIST {"op":"LIST"[,"prefix":p][,"start":s][,"end":e][,"limit":n]}          → ListResult
//
// LIST returns the keys that start with Prefix and lie in [Start, End), in
// order; an empty End means no upper bound. Limit 0 means DefaultListLimit.
type Query struct {
	Op     Op // OpGet or OpList
	Key    []byte
	Prefix []byte
	Start  []byte
	End    []byte
	Limit  int
}

// AppendMsgpack appends the query's canonical encoding to dst (LIST: only
// the non-nil bounds and a non-zero limit).
func (q Query) AppendMsgpack(dst []byte) []byte {
	if q.Op != OpList {
		return appendKeyed(dst, q.Op, q.Key, 2)
	}
	n := 1
	for _, present := range []bool{q.Prefix != nil, q.Start != nil, q.End != nil, q.Limit != 0} {
		if present {
			n++
		}
	}
	dst = mp.AppendMapHeader(dst, n)
	dst = appendOp(dst, q.Op)
	for _, f := range []struct {
		name string
		b    []byte
	}{{"prefix", q.Prefix}, {"start", q.Start}, {"end", q.End}} {
		if f.b != nil {
			dst = mp.AppendString(dst, f.name)
			dst = mp.AppendBytes(dst, f.b)
		}
	}
	if q.Limit != 0 {
		dst = mp.AppendString(dst, "limit")
		dst = mp.AppendInt(dst, int64(q.Limit))
	}
	return dst
}

// MarshalMsgpack implements msgpack.Marshaler with AppendMsgpack.
func (q Query) MarshalMsgpack() ([]byte, error) { return q.AppendMsgpack(nil), nil }

// UnmarshalMsgpack implements msgpack.Unmarshaler with ParseQuery (on a copy
// of b).
func (q *Query) UnmarshalMsgpack(b []byte) error {
	v, err := ParseQuery(bytes.Clone(b))
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// ParseQuery decodes and checks a query exactly as the plugin does; an invalid
// query gets the *abi.Error the plugin would report. A LIST without a limit
// gets DefaultListLimit. Byte fields alias data.
func ParseQuery(data []byte) (Query, error) {
	var q query
	if err := decodeQuery(data, &q); err != nil {
		return Query{}, err
	}
	return Query{Op: q.op, Key: q.key, Prefix: q.prefix, Start: q.start, End: q.end, Limit: q.limit}, nil
}

// SetResult answers SET and CAS: the key's new version (the entry's index).
type SetResult struct {
	Version uint64 `msgpack:"version" json:"version"`
}

// DeleteResult answers DELETE.
type DeleteResult struct {
	Deleted bool `msgpack:"deleted" json:"deleted"` // whether the key existed
}

// GetResult answers GET.
type GetResult struct {
	Value   []byte `msgpack:"value" json:"value"`
	Version uint64 `msgpack:"version" json:"version"`
}

// TxnResult answers TXN: one result per operation, in order.
type TxnResult struct {
	Results []OpResult `msgpack:"results" json:"results"`
}

// OpResult is one TXN operation's result: a SetResult ({"version": n}) for
// SET and CAS, a DeleteResult ({"deleted": b}) for DELETE. It decodes either
// (the field of the other kind stays zero); it is not meant for encoding.
type OpResult struct {
	Version uint64 `msgpack:"version,omitempty" json:"version,omitempty"`
	Deleted bool   `msgpack:"deleted,omitempty" json:"deleted,omitempty"`
}

// ListResult answers LIST. Next, when present, is the first key that was
// not returned: pass it as Start (with the same Prefix, End and Limit) to
// continue.
type ListResult struct {
	Items []Item `msgpack:"items" json:"items"`
	Next  []byte `msgpack:"next,omitempty" json:"next,omitempty"`
}

// Item is one key of a ListResult.
type Item struct {
	Key     []byte `msgpack:"key" json:"key"`
	Value   []byte `msgpack:"value" json:"value"`
	Version uint64 `msgpack:"version" json:"version"`
}

// Encodings of the results. Field order is fixed, integers use their
// shortest form and byte strings are bin: the answer of a state is the same
// bytes on every node and in every build.

func appendSetResult(dst []byte, version uint64) []byte {
	dst = append(dst, 0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n')
	return mp.AppendUint(dst, version)
}

func appendDeleteResult(dst []byte, deleted bool) []byte {
	dst = append(dst, 0x81, 0xa7, 'd', 'e', 'l', 'e', 't', 'e', 'd')
	return mp.AppendBool(dst, deleted)
}

func appendGetResult(dst []byte, value []byte, version uint64) []byte {
	dst = append(dst, 0x82, 0xa5, 'v', 'a', 'l', 'u', 'e')
	dst = mp.AppendBytes(dst, value)
	dst = append(dst, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n')
	return mp.AppendUint(dst, version)
}

func appendItem(dst []byte, key, value []byte, version uint64) []byte {
	dst = append(dst, 0x83, 0xa3, 'k', 'e', 'y')
	dst = mp.AppendBytes(dst, key)
	dst = append(dst, 0xa5, 'v', 'a', 'l', 'u', 'e')
	dst = mp.AppendBytes(dst, value)
	dst = append(dst, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n')
	return mp.AppendUint(dst, version)
}

// itemSize is the encoded size of an item (appendItem).
func itemSize(klen, vlen int, version uint64) int {
	return 1 + 4 + mp.BinSize(klen) + 6 + mp.BinSize(vlen) + 8 + mp.UintSize(version)
}
