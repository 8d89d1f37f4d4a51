package kvstore

import (
	"encoding/binary"
	"fmt"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

// fields holds the raw MsgPack encodings of the known fields of a request
// map, aliasing the input; nil means absent (a present field is never empty).
// A known field given twice is refused.
type fields struct {
	op, key, value, version, ops []byte
	prefix, start, end, limit    []byte
	kind                         string // "command" or "query", for messages
}

// readFields checks that data is one well-formed MsgPack map with string
// field names and collects its known fields (aliasing data).
func readFields(data []byte, kind string, f *fields) error {
	f.kind = kind
	if !mp.Valid(data) {
		return badRequest("malformed " + kind + ": invalid msgpack")
	}
	return f.read(data)
}

// read collects the fields of a map already known to be well-formed.
func (f *fields) read(data []byte) error {
	r := mp.Reader{}
	r.Reset(data)
	n, err := r.ReadMapHeader()
	if err != nil {
		return badRequest("malformed " + f.kind + ": expected a map")
	}
	for i := 0; i < n; i++ {
		if t := r.Peek(); t != mp.TypeStr && t != mp.TypeBin {
			return badRequest("malformed " + f.kind + ": field names must be strings")
		}
		name, _ := r.ReadBytes()
		raw, _ := r.ReadRaw()
		var dst *[]byte
		switch string(name) {
		case "op":
			dst = &f.op
		case "key":
			dst = &f.key
		case "value":
			dst = &f.value
		case "version":
			dst = &f.version
		case "ops":
			dst = &f.ops
		case "prefix":
			dst = &f.prefix
		case "start":
			dst = &f.start
		case "end":
			dst = &f.end
		case "limit":
			dst = &f.limit
		default:
			continue // unknown fields are ignored
		}
		if *dst != nil {
			return badRequest(fmt.Sprintf("malformed %s: field %q given twice", f.kind, name))
		}
		*dst = raw
	}
	return nil
}

// rawBytes decodes a raw str or bin value.
func rawBytes(raw []byte) ([]byte, bool) {
	r := mp.Reader{}
	r.Reset(raw)
	if t := r.Peek(); t != mp.TypeStr && t != mp.TypeBin {
		return nil, false
	}
	b, err := r.ReadBytes()
	return b, err == nil
}

// rawUint decodes a raw non-negative integer.
func rawUint(raw []byte) (uint64, bool) {
	r := mp.Reader{}
	r.Reset(raw)
	v, err := r.ReadUint64()
	return v, err == nil
}

// rawInt decodes a raw integer.
func rawInt(raw []byte) (int64, bool) {
	r := mp.Reader{}
	r.Reset(raw)
	v, err := r.ReadInt64()
	return v, err == nil
}

// opName reads the op field.
func (f *fields) opName() ([]byte, error) {
	if f.op == nil {
		return nil, badRequest("missing op")
	}
	name, ok := rawBytes(f.op)
	if !ok {
		return nil, badRequest("op must be a string")
	}
	return name, nil
}

// keyField reads and checks the key field.
func (f *fields) keyField() ([]byte, error) {
	if f.key == nil {
		return nil, badRequest("missing key")
	}
	key, ok := rawBytes(f.key)
	if !ok {
		return nil, badRequest("key must be str or bin")
	}
	if len(key) == 0 {
		return nil, badRequest("empty key")
	}
	if len(key) > abi.MaxKeySize {
		return nil, tooLarge("key", len(key), abi.MaxKeySize)
	}
	return key, nil
}

// valueField reads and checks the value field.
func (f *fields) valueField() ([]byte, error) {
	if f.value == nil {
		return nil, badRequest("missing value")
	}
	v, ok := rawBytes(f.value)
	if !ok {
		return nil, badRequest("value must be str or bin")
	}
	if len(v) > abi.MaxValueSize {
		return nil, tooLarge("value", len(v), abi.MaxValueSize)
	}
	return v, nil
}

// versionField reads the version field, if present.
func (f *fields) versionField() (uint64, error) {
	v, ok := rawUint(f.version)
	if !ok {
		return 0, badRequest("version must be a non-negative integer")
	}
	return v, nil
}

// boundField reads an optional LIST bound (prefix, start or end).
func boundField(name string, raw []byte) ([]byte, error) {
	if raw == nil {
		return nil, nil
	}
	b, ok := rawBytes(raw)
	if !ok {
		return nil, badRequest(name + " must be str or bin")
	}
	if len(b) > abi.MaxKeySize {
		return nil, tooLarge(name, len(b), abi.MaxKeySize)
	}
	return b, nil
}

// command is a decoded command whose byte fields alias the input.
type command struct {
	op         Op
	key, value []byte
	version    uint64
	hasVersion bool
	ops        []byte // TXN: the raw ops array
}

// decodeCommand decodes and checks the command in data. Inside a TXN only
// SET, DELETE and CAS are allowed.
func decodeCommand(data []byte, c *command) error {
	if fastCommand(data, c) {
		return nil
	}
	*c = command{}
	return decodeCommandGeneral(data, c)
}

// decodeCommandGeneral decodes any command and reports every error.
func decodeCommandGeneral(data []byte, c *command) error {
	var f fields
	if err := readFields(data, "command", &f); err != nil {
		return err
	}
	return c.fromFields(&f, false)
}

// fromFields checks the fields in the protocol's order: op, ops (TXN), key,
// value, version.
func (c *command) fromFields(f *fields, inTxn bool) error {
	name, err := f.opName()
	if err != nil {
		return err
	}
	c.op = lookupOp(name)
	switch {
	case c.op == 0:
		return badRequest(fmt.Sprintf("unknown op %q", display(name)))
	case inTxn && c.op != OpSet && c.op != OpDelete && c.op != OpCAS:
		return badRequest(fmt.Sprintf("op %q is not allowed in a TXN (only SET, DELETE and CAS)", display(name)))
	case c.op == OpList:
		return badRequest(fmt.Sprintf("op %q is only valid as a query", display(name)))
	}
	if c.op == OpTxn {
		if f.ops == nil {
			return badRequest("missing ops")
		}
		r := mp.Reader{}
		r.Reset(f.ops)
		if r.Peek() != mp.TypeArray {
			return badRequest("ops must be an array")
		}
		c.ops = f.ops
		return nil
	}
	if c.key, err = f.keyField(); err != nil {
		return err
	}
	if c.op == OpSet || c.op == OpCAS {
		if c.value, err = f.valueField(); err != nil {
			return err
		}
	}
	if c.op == OpCAS && f.version == nil {
		return badRequest("missing version")
	}
	if (c.op == OpCAS || c.op == OpDelete) && f.version != nil {
		if c.version, err = f.versionField(); err != nil {
			return err
		}
		c.hasVersion = true
	}
	return nil
}

// canonicalSet recognises a SET in the exact layout that Command.AppendMsgpack
// and the seed's Python client produce — {"op":"SET","key":k,"value":v} with
// fixstr names, op in upper case, k and v str or bin — with straight-line
// code: it is the hot path of the plugin, and branches, loops and calls are
// costly in Go's wasm code. ok is false for anything else.
func canonicalSet(b []byte) (key, value []byte, ok bool) {
	// {"op":"SET","key": is 12 bytes; then at least a 1-byte key header,
	// "value" (6 bytes) and a 1-byte value header.
	if len(b) < 20 ||
		binary.LittleEndian.Uint64(b[0:8]) != setPrefix0 ||
		binary.LittleEndian.Uint32(b[8:12]) != setPrefix1 {
		return nil, nil, false
	}
	p, n, hdr := 12, 0, 0
	switch c := b[p]; {
	case c >= 0xa0 && c <= 0xbf:
		n, hdr = int(c&0x1f), 1
	case c == 0xc4 || c == 0xd9:
		n, hdr = int(b[p+1]), 2
	case c == 0xc5 || c == 0xda:
		n, hdr = int(binary.BigEndian.Uint16(b[p+1:p+3])), 3
	default:
		return nil, nil, false
	}
	p += hdr
	if n == 0 || n > abi.MaxKeySize || len(b)-p < n+7 {
		return nil, nil, false
	}
	key = b[p : p+n : p+n]
	p += n
	if binary.LittleEndian.Uint32(b[p:p+4]) != valueName0 || binary.LittleEndian.Uint16(b[p+4:p+6]) != valueName1 {
		return nil, nil, false
	}
	p += 6
	switch c := b[p]; {
	case c >= 0xa0 && c <= 0xbf:
		n, hdr = int(c&0x1f), 1
	case (c == 0xc4 || c == 0xd9) && len(b)-p >= 2:
		n, hdr = int(b[p+1]), 2
	case (c == 0xc5 || c == 0xda) && len(b)-p >= 3:
		n, hdr = int(binary.BigEndian.Uint16(b[p+1:p+3])), 3
	case (c == 0xc6 || c == 0xdb) && len(b)-p >= 5:
		n, hdr = int(binary.BigEndian.Uint32(b[p+1:p+5])), 5
	default:
		return nil, nil, false
	}
	p += hdr
	if n > abi.MaxValueSize || len(b)-p != n {
		return nil, nil, false
	}
	return key, b[p:len(b):len(b)], true
}

// The fixed parts of canonicalSet's layout as little-endian words:
// 0x83 0xa2 'o' 'p' 0xa3 'S' 'E' 'T', then 0xa3 'k' 'e' 'y'; and 0xa5 'v' 'a'
// 'l', then 'u' 'e'.
const (
	setPrefix0 = uint64(0x83) | uint64(0xa2)<<8 | uint64('o')<<16 | uint64('p')<<24 |
		uint64(0xa3)<<32 | uint64('S')<<40 | uint64('E')<<48 | uint64('T')<<56
	setPrefix1 = uint32(0xa3) | uint32('k')<<8 | uint32('e')<<16 | uint32('y')<<24
	valueName0 = uint32(0xa5) | uint32('v')<<8 | uint32('a')<<16 | uint32('l')<<24
	valueName1 = uint16('u') | uint16('e')<<8
)

// fastCommand decodes the usual shape of a valid SET, DELETE, CAS or GET in
// one pass without function calls (costly in Go's wasm code): a fixmap whose
// field names are fixstr and among op, key, value and version, each at most
// once, with str or bin op, key and value and a non-negative integer version,
// passing every check. It returns false for anything else, and the general
// decoder, which gives the same answer on what fastCommand accepts, takes
// over (and reports errors).
func fastCommand(b []byte, c *command) bool {
	if len(b) == 0 || b[0]&0xf0 != 0x80 {
		return false
	}
	var op, key, value []byte
	var version uint64
	var seen uint8
	off := 1
	for fieldsLeft := int(b[0] & 0x0f); fieldsLeft > 0; fieldsLeft-- {
		// Field name: a fixstr.
		if off >= len(b) || b[off]&0xe0 != 0xa0 {
			return false
		}
		n := int(b[off] & 0x1f)
		off++
		if n > len(b)-off {
			return false
		}
		var bit uint8
		switch string(b[off : off+n]) {
		case "op":
			bit = 1
		case "key":
			bit = 2
		case "value":
			bit = 4
		case "version":
			bit = 8
		default:
			return false
		}
		off += n
		if seen&bit != 0 || off >= len(b) {
			return false
		}
		seen |= bit
		// Value: str or bin for op, key and value; an integer for version.
		h := b[off]
		off++
		if bit == 8 {
			w := 0
			switch {
			case h <= 0x7f:
				version = uint64(h)
				continue
			case h == 0xcc:
				w = 1
			case h == 0xcd:
				w = 2
			case h == 0xce:
				w = 4
			case h == 0xcf:
				w = 8
			default:
				return false
			}
			if w > len(b)-off {
				return false
			}
			version = 0
			for _, x := range b[off : off+w] {
				version = version<<8 | uint64(x)
			}
			off += w
			continue
		}
		w := 0
		switch {
		case h >= 0xa0 && h <= 0xbf:
			n = int(h & 0x1f)
		case h == 0xc4 || h == 0xd9:
			w = 1
		case h == 0xc5 || h == 0xda:
			w = 2
		case h == 0xc6 || h == 0xdb:
			w = 4
		default:
			return false
		}
		if w > len(b)-off {
			return false
		}
		if w > 0 {
			n = 0
			for _, x := range b[off : off+w] {
				n = n<<8 | int(x)
			}
			off += w
		}
		if n > len(b)-off {
			return false
		}
		v := b[off : off+n : off+n]
		off += n
		switch bit {
		case 1:
			op = v
		case 2:
			key = v
		default:
			value = v
		}
	}
	if off != len(b) || seen&3 != 3 || len(key) == 0 || len(key) > abi.MaxKeySize {
		return false
	}
	// The op, ignoring ASCII case (x|0x20 lower-cases a letter and maps no
	// other byte to one).
	switch {
	case len(op) == 3 && op[0]|0x20 == 's' && op[1]|0x20 == 'e' && op[2]|0x20 == 't':
		c.op = OpSet
	case len(op) == 3 && op[0]|0x20 == 'g' && op[1]|0x20 == 'e' && op[2]|0x20 == 't':
		c.op = OpGet
	case len(op) == 3 && op[0]|0x20 == 'c' && op[1]|0x20 == 'a' && op[2]|0x20 == 's':
		c.op = OpCAS
	case len(op) == 6 && op[0]|0x20 == 'd' && op[1]|0x20 == 'e' && op[2]|0x20 == 'l' &&
		op[3]|0x20 == 'e' && op[4]|0x20 == 't' && op[5]|0x20 == 'e':
		c.op = OpDelete
	default:
		return false
	}
	if (c.op == OpSet || c.op == OpCAS) && (seen&4 == 0 || len(value) > abi.MaxValueSize) {
		return false
	}
	if c.op == OpCAS && seen&8 == 0 {
		return false
	}
	c.key = key
	if c.op == OpSet || c.op == OpCAS {
		c.value = value
	}
	if c.op == OpCAS || c.op == OpDelete {
		c.version, c.hasVersion = version, seen&8 != 0
	}
	return true
}

// forEachOp calls fn with each decoded operation of a TXN's ops array. An
// operation's error is reported with its position.
func forEachOp(ops []byte, fn func(i int, c *command) error) error {
	r := mp.Reader{}
	r.Reset(ops)
	n, _ := r.ReadArrayHeader()
	for i := 0; i < n; i++ {
		raw, _ := r.ReadRaw()
		var f fields
		f.kind = "command"
		var c command
		err := f.read(raw)
		if err == nil {
			err = c.fromFields(&f, true)
		}
		if err == nil {
			err = fn(i, &c)
		}
		if err != nil {
			return atOp(i, err)
		}
	}
	return nil
}

// txnLen returns the number of operations of a TXN.
func txnLen(ops []byte) int {
	r := mp.Reader{}
	r.Reset(ops)
	n, _ := r.ReadArrayHeader()
	return n
}

// query is a decoded query whose byte fields alias the input.
type query struct {
	op                 Op
	key                []byte
	prefix, start, end []byte
	limit              int
}

// decodeQuery decodes and checks the query in data, in the protocol's order:
// op, then key (GET) or prefix, start, end, limit (LIST).
func decodeQuery(data []byte, q *query) error {
	var f fields
	if err := readFields(data, "query", &f); err != nil {
		return err
	}
	name, err := f.opName()
	if err != nil {
		return err
	}
	q.op = lookupOp(name)
	switch q.op {
	case 0:
		return badRequest(fmt.Sprintf("unknown op %q", display(name)))
	case OpGet:
		q.key, err = f.keyField()
		return err
	case OpList:
	default:
		return badRequest(fmt.Sprintf("op %q is only valid as a command", display(name)))
	}
	if q.prefix, err = boundField("prefix", f.prefix); err != nil {
		return err
	}
	if q.start, err = boundField("start", f.start); err != nil {
		return err
	}
	if q.end, err = boundField("end", f.end); err != nil {
		return err
	}
	q.limit = DefaultListLimit
	if f.limit != nil {
		n, ok := rawInt(f.limit)
		if !ok || n < 1 || n > MaxListLimit {
			return badRequest(fmt.Sprintf("limit must be an integer between 1 and %d", MaxListLimit))
		}
		q.limit = int(n)
	}
	return nil
}

// lookupOp maps an op name to its Op, ignoring ASCII case; 0 if unknown.
func lookupOp(name []byte) Op {
	switch len(name) {
	case 3:
		switch {
		case equalFold(name, "SET"):
			return OpSet
		case equalFold(name, "CAS"):
			return OpCAS
		case equalFold(name, "TXN"):
			return OpTxn
		case equalFold(name, "GET"):
			return OpGet
		}
	case 4:
		if equalFold(name, "LIST") {
			return OpList
		}
	case 6:
		if equalFold(name, "DELETE") {
			return OpDelete
		}
	}
	return 0
}

// equalFold compares b with the upper-case ASCII string upper, ignoring ASCII
// case only (no Unicode folding: "ſet" is not "SET").
func equalFold(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// maxDisplay bounds how much of an unknown op name an error message repeats.
const maxDisplay = 64

// display returns name as it appears in error messages: at most maxDisplay
// bytes, then "...".
func display(name []byte) string {
	if len(name) > maxDisplay {
		return string(name[:maxDisplay]) + "..."
	}
	return string(name)
}

func badRequest(msg string) error {
	return &abi.Error{Code: abi.CodeBadRequest, Message: msg}
}

func tooLarge(what string, n, max int) error {
	return &abi.Error{Code: abi.CodeTooLarge, Message: fmt.Sprintf("%s too large: %d bytes (max %d)", what, n, max)}
}

// atOp prefixes a TXN operation's error with its position.
func atOp(i int, err error) error {
	if ae, ok := err.(*abi.Error); ok {
		return &abi.Error{Code: ae.Code, Message: fmt.Sprintf("ops[%d]: %s", i, ae.Message)}
	}
	return fmt.Errorf("ops[%d]: %w", i, err)
}
