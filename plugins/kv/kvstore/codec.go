package kvstore

import (
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/abi/mp"
)

// The client side of the protocol: encoders of commands and queries and
// decoders of results, for the HTTP layer and any other client. They are the
// only ones outside the plugin itself (host/httpapi calls them), and they run
// on every PUT and GET: the encoders take a string key and append to a
// caller's buffer, and the decoders walk the result in place, so that
// neither allocates. Every encoder writes the canonical encoding of
// Command.AppendMsgpack or Query.AppendMsgpack (they share the code), which
// is the layout the plugin's fast paths recognise; the decoders read what the
// plugin writes (the result encoders in types.go) and fail on anything else.

// AppendSetHead appends the head of a SET (op OpSet) or CAS (op OpCAS) of key
// with a value of valueLen bytes, up to the value's bin header: the caller
// appends the valueLen bytes of the value and then, for a CAS,
// AppendCASVersion. So a value can be read straight into the command:
//
//	b = kvstore.AppendSetHead(b, kvstore.OpSet, key, len(value))
//	b = append(b, value...) // {"op":"SET","key":key,"value":value}
//
// The result is a SetResult (ParseSetResult). It panics for any other op.
func AppendSetHead(dst []byte, op Op, key string, valueLen int) []byte {
	return appendSetHead(dst, op, key, valueLen)
}

// AppendCASVersion appends the version field that ends a CAS begun with
// AppendSetHead and its value: the key's expected current version (0: the key
// must be absent).
func AppendCASVersion(dst []byte, version uint64) []byte {
	dst = append(dst, "\xa7version"...)
	return mp.AppendUint(dst, version)
}

// AppendDelete appends {"op":"DELETE","key":key}, or with ifVersion the
// conditional {"op":"DELETE","key":key,"version":version}. The result is a
// DeleteResult (ParseDeleteResult).
func AppendDelete(dst []byte, key string, version uint64, ifVersion bool) []byte {
	return appendDelete(dst, key, version, ifVersion)
}

// AppendGet appends {"op":"GET","key":key}, a query (or a command, for a
// read through the log). The result is a GetResult (ParseGetResult).
func AppendGet(dst []byte, key string) []byte {
	return appendKeyed(dst, OpGet, key, 2)
}

// AppendTxn appends {"op":"TXN","ops":ops}, where ops is the encoding of the
// array of operations, used as is. It does not check ops: ParseCommand does.
// The result is a TxnResult.
func AppendTxn(dst []byte, ops []byte) []byte {
	return append(appendTxnHead(dst), ops...)
}

// bytestring is a key given as a string (the encoders above) or as a byte
// slice (Command and Query).
type bytestring interface{ ~string | ~[]byte }

// appendKeyed appends the head shared by every command and query on a key:
// a map of fields entries, its op, and key as a bin.
// fields is at most 4: the map header is a fixmap.
func appendKeyed[K bytestring](dst []byte, op Op, key K, fields int) []byte {
	dst = append(dst, 0x80|byte(fields))
	dst = appendOp(dst, op)
	dst = append(dst, "\xa3key"...)
	dst = mp.AppendBinHeader(dst, len(key))
	return append(dst, key...)
}

func appendSetHead[K bytestring](dst []byte, op Op, key K, valueLen int) []byte {
	switch op {
	case OpSet:
		dst = appendKeyed(dst, op, key, 3)
	case OpCAS:
		dst = appendKeyed(dst, op, key, 4)
	default:
		panic("kvstore: AppendSetHead of op " + op.String())
	}
	dst = append(dst, "\xa5value"...)
	return mp.AppendBinHeader(dst, valueLen)
}

func appendDelete[K bytestring](dst []byte, key K, version uint64, ifVersion bool) []byte {
	if !ifVersion {
		return appendKeyed(dst, OpDelete, key, 2)
	}
	dst = appendKeyed(dst, OpDelete, key, 3)
	return AppendCASVersion(dst, version)
}

// appendTxnHead appends a TXN up to its ops field's name.
func appendTxnHead(dst []byte) []byte {
	dst = mp.AppendMapHeader(dst, 2)
	dst = appendOp(dst, OpTxn)
	return mp.AppendString(dst, "ops")
}

// opFields holds the encoded op field of each op, name and value.
var opFields = [...]string{
	OpSet: "\xa2op\xa3SET", OpDelete: "\xa2op\xa6DELETE", OpCAS: "\xa2op\xa3CAS",
	OpTxn: "\xa2op\xa3TXN", OpGet: "\xa2op\xa3GET", OpList: "\xa2op\xa4LIST",
}

func appendOp(dst []byte, op Op) []byte {
	if op != 0 && int(op) < len(opFields) {
		return append(dst, opFields[op]...)
	}
	dst = mp.AppendString(dst, "op")
	return mp.AppendString(dst, op.String())
}

// ParseSetResult decodes a SetResult, the answer of SET and CAS: the key's
// new version.
func ParseSetResult(data []byte) (version uint64, err error) {
	var r mp.Reader
	n, err := resultMap(&r, data)
	for i := 0; i < n && err == nil; i++ {
		var name []byte
		if name, err = r.ReadBytes(); err == nil {
			if string(name) == "version" {
				version, err = r.ReadUint64()
			} else {
				err = r.Skip()
			}
		}
	}
	return version, resultEnd(&r, "SET", err)
}

// ParseDeleteResult decodes a DeleteResult, the answer of DELETE: whether
// the key existed.
func ParseDeleteResult(data []byte) (deleted bool, err error) {
	var r mp.Reader
	n, err := resultMap(&r, data)
	for i := 0; i < n && err == nil; i++ {
		var name []byte
		if name, err = r.ReadBytes(); err == nil {
			if string(name) == "deleted" {
				deleted, err = r.ReadBool()
			} else {
				err = r.Skip()
			}
		}
	}
	return deleted, resultEnd(&r, "DELETE", err)
}

// ParseGetResult decodes a GetResult, the answer of GET: the value, which
// aliases data, and its version. A result without a value is an error.
func ParseGetResult(data []byte) (value []byte, version uint64, err error) {
	var r mp.Reader
	n, err := resultMap(&r, data)
	seen := false
	for i := 0; i < n && err == nil; i++ {
		var name []byte
		if name, err = r.ReadBytes(); err != nil {
			break
		}
		switch string(name) {
		case "value":
			value, err = r.ReadBytes()
			seen = true
		case "version":
			version, err = r.ReadUint64()
		default:
			err = r.Skip()
		}
	}
	if err == nil && !seen {
		err = errors.New("no value")
	}
	return value, version, resultEnd(&r, "GET", err)
}

// ParseListResult decodes a ListResult, the answer of LIST. The keys, values
// and Next alias data; an item without a key or a value is an error.
func ParseListResult(data []byte) (ListResult, error) {
	var (
		lr ListResult
		r  mp.Reader
	)
	n, err := resultMap(&r, data)
	for i := 0; i < n && err == nil; i++ {
		var name []byte
		if name, err = r.ReadBytes(); err != nil {
			break
		}
		switch string(name) {
		case "items":
			lr.Items, err = readItems(&r)
		case "next":
			lr.Next, err = r.ReadBytes()
		default:
			err = r.Skip()
		}
	}
	return lr, resultEnd(&r, "LIST", err)
}

// readItems reads the items array of a ListResult.
func readItems(r *mp.Reader) ([]Item, error) {
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, err
	}
	if n > r.Len() { // an item takes at least a byte: do not trust n further
		return nil, mp.ErrShort
	}
	items := make([]Item, n)
	for i := range items {
		it := &items[i]
		fields, err := r.ReadMapHeader()
		var hasKey, hasValue bool
		for j := 0; j < fields && err == nil; j++ {
			var name []byte
			if name, err = r.ReadBytes(); err != nil {
				break
			}
			switch string(name) {
			case "key":
				it.Key, err = r.ReadBytes()
				hasKey = true
			case "value":
				it.Value, err = r.ReadBytes()
				hasValue = true
			case "version":
				it.Version, err = r.ReadUint64()
			default:
				err = r.Skip()
			}
		}
		if err == nil && (!hasKey || !hasValue) {
			err = errors.New("no key or no value")
		}
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
	}
	return items, nil
}

// resultMap starts reading a result map.
func resultMap(r *mp.Reader, data []byte) (int, error) {
	r.Reset(data)
	return r.ReadMapHeader()
}

// resultEnd checks a result map was read whole.
func resultEnd(r *mp.Reader, op string, err error) error {
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d trailing bytes", r.Len())
	}
	if err != nil {
		return fmt.Errorf("kvstore: malformed %s result: %w", op, err)
	}
	return nil
}
