// Package kvmodel is a plain reference implementation of the KV plugin's
// protocol (documented in plugins/kv/kvstore), written independently of it:
// a Go map, sorting, and the generic msgpack/v5 decoder and encoder. It is
// the model the real plugin is checked against (internal/fsmtest); it is
// meant to be obviously correct, not fast.
package kvmodel

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/raftkv/raftkv/abi"
)

// Protocol limits, restated from the specification.
const (
	defaultLimit = 100
	maxLimit     = 10000
	listBudget   = 1 << 20 // bytes of encoded items per LIST answer
	maxNameShown = 64
)

type record struct {
	value   []byte
	version uint64
}

// Model is the reference state machine. The zero value is not ready; use New.
type Model struct {
	data map[string]record
}

// New returns an empty model.
func New() *Model { return &Model{data: map[string]record{}} }

// Apply runs each entry's command in order and returns their results. A
// failed command changes nothing.
func (m *Model) Apply(entries []abi.Entry) []abi.Result {
	out := make([]abi.Result, len(entries))
	for i, e := range entries {
		out[i] = m.command(e.Index, e.Data)
	}
	return out
}

// Query answers a query without changing state.
func (m *Model) Query(q []byte) abi.Result {
	req, err := decodeRequest(q, "query")
	if err != nil {
		return failure(err)
	}
	name, err := opOf(req)
	if err != nil {
		return failure(err)
	}
	switch name {
	case "GET":
		key, err := keyOf(req)
		if err != nil {
			return failure(err)
		}
		return m.get(key)
	case "LIST":
		return m.list(req)
	case "SET", "DELETE", "CAS", "TXN":
		return failure(bad(fmt.Sprintf("op %q is only valid as a command", shown(req))))
	}
	return failure(bad(fmt.Sprintf("unknown op %q", shown(req))))
}

// Dump returns the whole state in key order.
func (m *Model) Dump() []abi.Record {
	keys := m.sortedKeys()
	out := make([]abi.Record, len(keys))
	for i, k := range keys {
		r := m.data[k]
		out[i] = abi.Record{Key: []byte(k), Value: bytes.Clone(r.value), Version: r.version}
	}
	return out
}

func (m *Model) sortedKeys() []string {
	keys := make([]string, 0, len(m.data))
	for k := range m.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// protoError is a failed request: a result code and message.
type protoError struct {
	code abi.Code
	msg  string
}

func (e *protoError) Error() string { return e.msg }

func bad(msg string) error { return &protoError{abi.CodeBadRequest, msg} }

func failure(err error) abi.Result {
	var pe *protoError
	if !errors.As(err, &pe) {
		panic(err) // a bug in the model
	}
	return abi.Result{Code: pe.code, Data: []byte(pe.msg)}
}

func success(v any) abi.Result {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return abi.Result{Code: abi.CodeOK, Data: buf.Bytes()}
}

// request is a decoded request map: the raw encoding of each field, and the
// op name as sent.
type request struct {
	fields map[string]msgpack.RawMessage
	op     []byte
}

// decodeRequest checks that data is one well-formed MsgPack map with string
// field names.
func decodeRequest(data []byte, kind string) (*request, error) {
	rd := bytes.NewReader(data)
	dec := msgpack.NewDecoder(rd)
	if len(data) == 0 || dec.Skip() != nil || rd.Len() != 0 {
		return nil, bad("malformed " + kind + ": invalid msgpack")
	}
	return decodeMap(data, kind)
}

// decodeMap decodes a map already known to be well-formed.
func decodeMap(data []byte, kind string) (*request, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	c, _ := dec.PeekCode()
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return nil, bad("malformed " + kind + ": expected a map")
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		panic(err)
	}
	req := &request{fields: map[string]msgpack.RawMessage{}}
	for i := 0; i < n; i++ {
		c, _ := dec.PeekCode()
		if !isStrOrBin(c) {
			return nil, bad("malformed " + kind + ": field names must be strings")
		}
		name, err := dec.DecodeBytes()
		if err != nil {
			panic(err)
		}
		raw, err := dec.DecodeRaw()
		if err != nil {
			panic(err)
		}
		if _, dup := req.fields[string(name)]; dup && protocolFields[string(name)] {
			return nil, bad(fmt.Sprintf("malformed %s: field %q given twice", kind, name))
		}
		req.fields[string(name)] = raw
	}
	return req, nil
}

// protocolFields are the field names the protocol gives a meaning; another
// name is ignored, even when it repeats.
var protocolFields = map[string]bool{
	"op": true, "key": true, "value": true, "version": true, "ops": true,
	"prefix": true, "start": true, "end": true, "limit": true,
}

func isStrOrBin(c byte) bool {
	return msgpcode.IsFixedString(c) || c == msgpcode.Str8 || c == msgpcode.Str16 || c == msgpcode.Str32 ||
		c == msgpcode.Bin8 || c == msgpcode.Bin16 || c == msgpcode.Bin32
}

// bytesField decodes a field that must be str or bin; present is false if
// the field is absent, ok false if it has another type.
func (r *request) bytesField(name string) (b []byte, present, ok bool) {
	raw, present := r.fields[name]
	if !present {
		return nil, false, false
	}
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	c, _ := dec.PeekCode()
	if !isStrOrBin(c) {
		return nil, true, false
	}
	b, err := dec.DecodeBytes()
	if err != nil {
		panic(err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, true, true
}

// intField decodes an integer field: ok is false if it is not an integer.
func (r *request) intField(name string) (v int64, u uint64, neg, present, ok bool) {
	raw, present := r.fields[name]
	if !present {
		return 0, 0, false, false, false
	}
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	c, _ := dec.PeekCode()
	if !msgpcode.IsFixedNum(c) && (c < msgpcode.Uint8 || c > msgpcode.Int64) {
		return 0, 0, false, true, false
	}
	x, err := dec.DecodeInterface()
	if err != nil {
		panic(err)
	}
	switch n := x.(type) {
	case int8:
		return int64(n), uint64(n), n < 0, true, true
	case int16:
		return int64(n), uint64(n), n < 0, true, true
	case int32:
		return int64(n), uint64(n), n < 0, true, true
	case int64:
		return n, uint64(n), n < 0, true, true
	case uint8:
		return int64(n), uint64(n), false, true, true
	case uint16:
		return int64(n), uint64(n), false, true, true
	case uint32:
		return int64(n), uint64(n), false, true, true
	case uint64:
		return int64(n), n, false, true, true
	}
	return 0, 0, false, true, false
}

// opOf returns the op in upper case, or an error if it is missing or not a
// string. An unknown name comes back as is (upper-cased ASCII).
func opOf(r *request) (string, error) {
	b, present, ok := r.bytesField("op")
	if !present {
		return "", bad("missing op")
	}
	if !ok {
		return "", bad("op must be a string")
	}
	r.op = b
	return asciiUpper(b), nil
}

// asciiUpper upper-cases ASCII letters only.
func asciiUpper(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c >= 'a' && c <= 'z' {
			c -= 32
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// shown is the op name as error messages repeat it.
func shown(r *request) string {
	if len(r.op) > maxNameShown {
		return string(r.op[:maxNameShown]) + "..."
	}
	return string(r.op)
}

func keyOf(r *request) ([]byte, error) {
	k, present, ok := r.bytesField("key")
	switch {
	case !present:
		return nil, bad("missing key")
	case !ok:
		return nil, bad("key must be str or bin")
	case len(k) == 0:
		return nil, bad("empty key")
	case len(k) > abi.MaxKeySize:
		return nil, &protoError{abi.CodeTooLarge, fmt.Sprintf("key too large: %d bytes (max %d)", len(k), abi.MaxKeySize)}
	}
	return k, nil
}

func valueOf(r *request) ([]byte, error) {
	v, present, ok := r.bytesField("value")
	switch {
	case !present:
		return nil, bad("missing value")
	case !ok:
		return nil, bad("value must be str or bin")
	case len(v) > abi.MaxValueSize:
		return nil, &protoError{abi.CodeTooLarge, fmt.Sprintf("value too large: %d bytes (max %d)", len(v), abi.MaxValueSize)}
	}
	return v, nil
}

// versionOf returns the version field: present reports whether it is there.
func versionOf(r *request) (v uint64, present bool, err error) {
	_, u, neg, present, ok := r.intField("version")
	if !present {
		return 0, false, nil
	}
	if !ok || neg {
		return 0, true, bad("version must be a non-negative integer")
	}
	return u, true, nil
}

// op is a checked write of a command or TXN.
type op struct {
	name        string
	key, value  []byte
	version     uint64
	conditional bool
}

// checkOp checks a SET, DELETE, CAS or GET request (GET only outside a TXN).
func checkOp(r *request, name string) (op, error) {
	o := op{name: name}
	var err error
	if o.key, err = keyOf(r); err != nil {
		return o, err
	}
	if name == "SET" || name == "CAS" {
		if o.value, err = valueOf(r); err != nil {
			return o, err
		}
	}
	if name == "CAS" || name == "DELETE" {
		v, present, err := versionOf(r)
		if name == "CAS" && !present {
			return o, bad("missing version")
		}
		if err != nil {
			return o, err
		}
		o.version, o.conditional = v, present
	}
	return o, nil
}

// command runs one command at index.
func (m *Model) command(index uint64, data []byte) abi.Result {
	req, err := decodeRequest(data, "command")
	if err != nil {
		return failure(err)
	}
	name, err := opOf(req)
	if err != nil {
		return failure(err)
	}
	switch name {
	case "SET", "DELETE", "CAS", "GET":
		o, err := checkOp(req, name)
		if err != nil {
			return failure(err)
		}
		if name == "GET" {
			return m.get(o.key)
		}
		tx := m.begin()
		res, err := tx.run(o, index)
		if err != nil {
			return failure(err)
		}
		tx.commit()
		return success(res)
	case "TXN":
		return m.txn(req, index)
	case "LIST":
		return failure(bad(fmt.Sprintf("op %q is only valid as a query", shown(req))))
	}
	return failure(bad(fmt.Sprintf("unknown op %q", shown(req))))
}

func (m *Model) txn(req *request, index uint64) abi.Result {
	raw, present := req.fields["ops"]
	if !present {
		return failure(bad("missing ops"))
	}
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	c, _ := dec.PeekCode()
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		return failure(bad("ops must be an array"))
	}
	n, _ := dec.DecodeArrayLen()
	ops := make([]op, n)
	for i := range ops {
		elem, err := dec.DecodeRaw()
		if err != nil {
			panic(err)
		}
		o, err := checkTxnOp(elem)
		if err != nil {
			return failure(at(i, err))
		}
		ops[i] = o
	}
	tx := m.begin()
	results := make([]any, 0, n)
	for i, o := range ops {
		res, err := tx.run(o, index)
		if err != nil {
			return failure(at(i, err))
		}
		results = append(results, res)
	}
	tx.commit()
	return success(struct {
		Results []any `msgpack:"results"`
	}{results})
}

func checkTxnOp(elem []byte) (op, error) {
	req, err := decodeMap(elem, "command")
	if err != nil {
		return op{}, err
	}
	name, err := opOf(req)
	if err != nil {
		return op{}, err
	}
	switch name {
	case "SET", "DELETE", "CAS":
		return checkOp(req, name)
	case "GET", "TXN", "LIST":
		return op{}, bad(fmt.Sprintf("op %q is not allowed in a TXN (only SET, DELETE and CAS)", shown(req)))
	}
	return op{}, bad(fmt.Sprintf("unknown op %q", shown(req)))
}

func at(i int, err error) error {
	pe := err.(*protoError)
	return &protoError{pe.code, fmt.Sprintf("ops[%d]: %s", i, pe.msg)}
}

// tx is a set of staged writes over the model: nil means deleted.
type tx struct {
	m      *Model
	staged map[string]*record
}

func (m *Model) begin() *tx { return &tx{m: m, staged: map[string]*record{}} }

func (t *tx) lookup(key []byte) (record, bool) {
	if r, ok := t.staged[string(key)]; ok {
		if r == nil {
			return record{}, false
		}
		return *r, true
	}
	r, ok := t.m.data[string(key)]
	return r, ok
}

func (t *tx) commit() {
	for k, r := range t.staged {
		if r == nil {
			delete(t.m.data, k)
		} else {
			t.m.data[k] = *r
		}
	}
}

type versionResult struct {
	Version uint64 `msgpack:"version"`
}

type deletedResult struct {
	Deleted bool `msgpack:"deleted"`
}

func (t *tx) run(o op, index uint64) (any, error) {
	if o.name == "CAS" || o.conditional {
		cur, exists := t.lookup(o.key)
		switch {
		case !exists && o.version != 0:
			return nil, &protoError{abi.CodeConflict, "key not found"}
		case exists && o.version == 0:
			return nil, &protoError{abi.CodeConflict, "key exists"}
		case exists && cur.version != o.version:
			return nil, &protoError{abi.CodeConflict, fmt.Sprintf("version mismatch: key has version %d, expected %d", cur.version, o.version)}
		}
	}
	switch o.name {
	case "SET", "CAS":
		t.staged[string(o.key)] = &record{value: bytes.Clone(o.value), version: index}
		return versionResult{index}, nil
	default: // DELETE
		_, existed := t.lookup(o.key)
		t.staged[string(o.key)] = nil
		return deletedResult{existed}, nil
	}
}

func (m *Model) get(key []byte) abi.Result {
	r, ok := m.data[string(key)]
	if !ok {
		return abi.Result{Code: abi.CodeNotFound, Data: []byte("key not found")}
	}
	value := r.value
	if value == nil {
		value = []byte{}
	}
	return success(struct {
		Value   []byte `msgpack:"value"`
		Version uint64 `msgpack:"version"`
	}{value, r.version})
}

type item struct {
	Key     []byte `msgpack:"key"`
	Value   []byte `msgpack:"value"`
	Version uint64 `msgpack:"version"`
}

func (m *Model) list(req *request) abi.Result {
	var bounds [3][]byte
	for i, name := range []string{"prefix", "start", "end"} {
		b, present, ok := req.bytesField(name)
		switch {
		case !present:
			continue
		case !ok:
			return failure(bad(name + " must be str or bin"))
		case len(b) > abi.MaxKeySize:
			return failure(&protoError{abi.CodeTooLarge, fmt.Sprintf("%s too large: %d bytes (max %d)", name, len(b), abi.MaxKeySize)})
		}
		bounds[i] = b
	}
	prefix, start, end := bounds[0], bounds[1], bounds[2]
	limit := defaultLimit
	if v, _, _, present, ok := req.intField("limit"); present {
		if !ok || v < 1 || v > maxLimit {
			return failure(bad(fmt.Sprintf("limit must be an integer between 1 and %d", maxLimit)))
		}
		limit = int(v)
	}

	var selected []string
	for _, k := range m.sortedKeys() {
		kb := []byte(k)
		if bytes.HasPrefix(kb, prefix) && bytes.Compare(kb, start) >= 0 && (len(end) == 0 || bytes.Compare(kb, end) < 0) {
			selected = append(selected, k)
		}
	}
	items := []item{}
	size := 0
	var next []byte
	for _, k := range selected {
		r := m.data[k]
		value := r.value
		if value == nil {
			value = []byte{}
		}
		it := item{Key: []byte(k), Value: value, Version: r.version}
		n := len(success(it).Data)
		if len(items) == limit || (len(items) > 0 && size+n > listBudget) {
			next = []byte(k)
			break
		}
		items = append(items, it)
		size += n
	}
	if next == nil {
		return success(struct {
			Items []item `msgpack:"items"`
		}{items})
	}
	return success(struct {
		Items []item `msgpack:"items"`
		Next  []byte `msgpack:"next"`
	}{items, next})
}
