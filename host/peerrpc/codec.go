package peerrpc

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

// decodeStrict decodes body, one MsgPack map, into v with the reflection
// codec, refusing keys v does not have and bytes after the map, then
// validates v.
func decodeStrict(body []byte, v interface{ validate() error }) error {
	if len(body) == 0 || !(body[0]>>4 == 0x8 || body[0] == 0xde || body[0] == 0xdf) {
		return fmt.Errorf("%w: the body is not a MsgPack map", abi.ErrMalformed)
	}
	if err := abi.Validate(body); err != nil {
		return err
	}
	rd := bytes.NewReader(body)
	dec := msgpack.NewDecoder(rd)
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", abi.ErrMalformed, err)
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the map", abi.ErrMalformed, rd.Len())
	}
	return v.validate()
}

// The hot path's bodies, by hand. Decoded byte fields alias the body (a
// fresh buffer per message).

// Marshal encodes r: {"commands": [{"plugin", "key", "data"}...]}.
func (r *ApplyBody) Marshal() ([]byte, error) {
	size := 1 + 9 + 5
	for _, c := range r.Commands {
		size += 1 + 7 + 5 + len(c.Plugin) + 4 + 5 + len(c.Key) + 5 + mp.BinSize(len(c.Data))
	}
	b := mp.AppendMapHeader(make([]byte, 0, size), 1)
	b = mp.AppendArrayHeader(mp.AppendString(b, "commands"), len(r.Commands))
	for _, c := range r.Commands {
		b = mp.AppendMapHeader(b, 3)
		b = mp.AppendString(mp.AppendString(b, "plugin"), c.Plugin)
		b = mp.AppendString(mp.AppendString(b, "key"), c.Key)
		b = mp.AppendBytes(mp.AppendString(b, "data"), c.Data)
	}
	return b, nil
}

// unmarshal decodes and validates an apply request.
func (r *ApplyBody) unmarshal(body []byte) error {
	seen := false
	err := decodeMap(mp.NewReader(body), true, func(rd *mp.Reader, key []byte) error {
		if string(key) != "commands" {
			return errUnknownField
		}
		seen = true
		n, err := rd.ReadArrayHeader()
		if err != nil {
			return err
		}
		if n == 0 || n > MaxBatch {
			return fmt.Errorf("%d commands (want 1 to %d)", n, MaxBatch)
		}
		r.Commands = make([]Command, n)
		for i := range r.Commands {
			c := &r.Commands[i]
			hasPlugin := false
			err := decodeMap(rd, false, func(rd *mp.Reader, key []byte) error {
				var err error
				switch string(key) {
				case "plugin":
					c.Plugin, err = readString(rd)
					hasPlugin = true
				case "key":
					c.Key, err = readString(rd)
				case "data":
					c.Data, err = readBin(rd)
				default:
					err = errUnknownField
				}
				return err
			})
			if err == nil && !hasPlugin {
				err = errors.New("no plugin")
			}
			if err != nil {
				return fmt.Errorf("command %d: %w", i, err)
			}
		}
		return nil
	})
	if err == nil && !seen {
		err = fmt.Errorf("%w: no commands", abi.ErrMalformed)
	}
	return err
}

// Marshal encodes r: {"plugin", "data", "level"}.
func (r *QueryBody) Marshal() ([]byte, error) {
	b := mp.AppendMapHeader(make([]byte, 0, 1+7+5+len(r.Plugin)+5+mp.BinSize(len(r.Data))+6+1), 3)
	b = mp.AppendString(mp.AppendString(b, "plugin"), r.Plugin)
	b = mp.AppendBytes(mp.AppendString(b, "data"), r.Data)
	b = mp.AppendUint(mp.AppendString(b, "level"), uint64(r.Level))
	return b, nil
}

// unmarshal decodes and validates a query request.
func (r *QueryBody) unmarshal(body []byte) error {
	hasPlugin := false
	err := decodeMap(mp.NewReader(body), true, func(rd *mp.Reader, key []byte) error {
		var err error
		switch string(key) {
		case "plugin":
			r.Plugin, err = readString(rd)
			hasPlugin = true
		case "data":
			r.Data, err = readBin(rd)
		case "level":
			var v uint64
			if v, err = readUint(rd); err == nil && v > uint64(Linearizable) {
				err = fmt.Errorf("unknown consistency %d", v)
			}
			r.Level = Consistency(v)
		default:
			err = errUnknownField
		}
		return err
	})
	if err == nil && !hasPlugin {
		err = fmt.Errorf("%w: no plugin", abi.ErrMalformed)
	}
	return err
}

// ApplyResponse is an apply's answer: one result per command, in order,
// each a Response (its own code, data and error).
type ApplyResponse []Response

// Marshal encodes r: an array of responses.
func (r ApplyResponse) Marshal() []byte {
	b := mp.AppendArrayHeader(nil, len(r))
	for i := range r {
		b = r[i].appendTo(b)
	}
	return b
}

// Unmarshal decodes an apply's answer into r.
func (r *ApplyResponse) Unmarshal(body []byte) error {
	rd := mp.NewReader(body)
	n, err := rd.ReadArrayHeader()
	if err != nil {
		return fmt.Errorf("%w: %v", abi.ErrMalformed, err)
	}
	if n > MaxBatch {
		return fmt.Errorf("%w: %d results", abi.ErrMalformed, n)
	}
	*r = make(ApplyResponse, n)
	for i := range *r {
		if err := (*r)[i].decode(rd, false); err != nil {
			return fmt.Errorf("result %d: %w", i, err)
		}
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the results", abi.ErrMalformed, rd.Len())
	}
	return nil
}

// Response is every method's answer: an error, or a result.
type Response struct {
	Code    abi.Code `msgpack:"code"`
	Data    []byte   `msgpack:"data,omitempty"`
	ErrKind int      `msgpack:"err_kind,omitempty"` // a Code
	Err     string   `msgpack:"err,omitempty"`
}

// ResponseOf is the Response that carries res, or err (its code and
// message) if err is not nil.
func ResponseOf(res abi.Result, err error) Response {
	if err != nil {
		var r Response
		r.ErrKind, r.Err = EncodeErr(err)
		return r
	}
	return Response{Code: res.Code, Data: res.Data}
}

// Result is the outcome r carries: its error (as DecodeErr rebuilds it),
// or its result.
func (r *Response) Result() (abi.Result, error) {
	if r.ErrKind != 0 {
		return abi.Result{}, DecodeErr(r.ErrKind, r.Err)
	}
	return abi.Result{Code: r.Code, Data: r.Data}, nil
}

// Marshal encodes r.
func (r *Response) Marshal() []byte {
	return r.appendTo(make([]byte, 0, 1+5+5+5+mp.BinSize(len(r.Data))+9+9+4+5+len(r.Err)))
}

func (r *Response) appendTo(b []byte) []byte {
	n := 1
	if len(r.Data) > 0 {
		n++
	}
	if r.ErrKind != 0 {
		n++
	}
	if r.Err != "" {
		n++
	}
	b = mp.AppendMapHeader(b, n)
	b = mp.AppendUint(mp.AppendString(b, "code"), uint64(r.Code))
	if len(r.Data) > 0 {
		b = mp.AppendBytes(mp.AppendString(b, "data"), r.Data)
	}
	if r.ErrKind != 0 {
		b = mp.AppendInt(mp.AppendString(b, "err_kind"), int64(r.ErrKind))
	}
	if r.Err != "" {
		b = mp.AppendString(mp.AppendString(b, "err"), r.Err)
	}
	return b
}

// Unmarshal decodes a response body into r (unknown keys are skipped: an
// answer is the leader's, not an attacker's, but a newer leader may add
// some).
func (r *Response) Unmarshal(body []byte) error {
	return r.decode(mp.NewReader(body), true)
}

func (r *Response) decode(rd *mp.Reader, whole bool) error {
	return decodeMap(rd, whole, func(rd *mp.Reader, key []byte) error {
		var err error
		switch string(key) {
		case "code":
			var v uint64
			if v, err = readUint(rd); err == nil && v > math.MaxUint32 {
				err = mp.ErrRange
			}
			r.Code = abi.Code(v)
		case "data":
			r.Data, err = readBin(rd)
		case "err_kind":
			var v int64
			if rd.Peek() == mp.TypeNil {
				err = rd.ReadNil()
			} else if v, err = rd.ReadInt64(); err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
				err = mp.ErrRange
			}
			r.ErrKind = int(v)
		case "err":
			r.Err, err = readString(rd)
		default:
			err = rd.Skip()
		}
		return err
	})
}

var errUnknownField = errors.New("unknown field")

// decodeMap calls field for each key of the MsgPack map at rd; field reads
// (or skips) the key's value. With whole, the map must be all of rd.
func decodeMap(rd *mp.Reader, whole bool, field func(rd *mp.Reader, key []byte) error) error {
	n, err := rd.ReadMapHeader()
	if err != nil {
		return fmt.Errorf("%w: %v", abi.ErrMalformed, err)
	}
	for i := 0; i < n; i++ {
		if rd.Peek() != mp.TypeStr {
			return fmt.Errorf("%w: map key %d is not a string", abi.ErrMalformed, i)
		}
		key, err := rd.ReadBytes()
		if err == nil {
			err = field(rd, key)
		}
		if err != nil {
			if errors.Is(err, abi.ErrMalformed) {
				return fmt.Errorf("field %q: %w", key, err)
			}
			return fmt.Errorf("%w: field %q: %v", abi.ErrMalformed, key, err)
		}
	}
	if whole && rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the map", abi.ErrMalformed, rd.Len())
	}
	return nil
}

// The field readers accept nil for an absent value.

func readString(rd *mp.Reader) (string, error) {
	if rd.Peek() == mp.TypeNil {
		return "", rd.ReadNil()
	}
	b, err := rd.ReadBytes()
	return string(b), err
}

func readBin(rd *mp.Reader) ([]byte, error) {
	if rd.Peek() == mp.TypeNil {
		return nil, rd.ReadNil()
	}
	return rd.ReadBytes()
}

func readUint(rd *mp.Reader) (uint64, error) {
	if rd.Peek() == mp.TypeNil {
		return 0, rd.ReadNil()
	}
	return rd.ReadUint64()
}
