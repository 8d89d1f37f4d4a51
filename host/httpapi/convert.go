package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

// JSON ↔ MsgPack conversion for the plugin endpoints.
//
// JSON to MsgPack: object → map (keys in the order sent, a name twice refused),
// array → array, string → str, an integer → the shortest int (uint64 above
// math.MaxInt64), any other number → float64, true/false → bool, null → nil,
// and an object whose only field is "$b64" with a string value → bin of the
// base64-decoded (standard alphabet, padded) bytes. Nesting deeper than
// abi.MaxDepth is refused.
//
// MsgPack to JSON: map → object, array → array, str and bin → string when the
// bytes are valid UTF-8 and {"$b64": "<base64>"} otherwise, int → number,
// float → number (NaN and ±Inf → null), bool, nil → null, ext →
// {"$ext": type, "$b64": "<data>"}. A map key that is not a UTF-8 str or bin
// becomes the JSON text of its conversion, as a string (1 → "1"). An empty
// payload is null; a payload that is not one well-formed MsgPack value is
// {"$b64": "<payload>"}.

// b64Field marks binary data in JSON.
const b64Field = "$b64"

// jsonToMsgpack appends the MsgPack form of the single JSON value in data to
// dst.
func jsonToMsgpack(dst, data []byte) ([]byte, error) {
	if err := checkJSONText(data); err != nil {
		return dst, err
	}
	c := j2m{dec: json.NewDecoder(bytes.NewReader(data)), out: dst}
	c.dec.UseNumber()
	tok, err := c.dec.Token()
	if err != nil {
		return dst, jsonErr(err)
	}
	if err := c.value(tok, 0); err != nil {
		return dst, err
	}
	if _, err := c.dec.Token(); err != io.EOF {
		return dst, badRequest("malformed JSON body: data after the JSON value")
	}
	return c.out, nil
}

func jsonErr(err error) error {
	if err == io.EOF {
		return badRequest("malformed JSON body: empty")
	}
	return badRequest("malformed JSON body: %v", err)
}

type j2m struct {
	dec *json.Decoder
	out []byte
}

func (c *j2m) next() (json.Token, error) {
	tok, err := c.dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, jsonErr(err)
	}
	return tok, nil
}

func (c *j2m) value(tok json.Token, depth int) error {
	switch t := tok.(type) {
	case json.Delim:
		if depth >= abi.MaxDepth {
			return badRequest("malformed JSON body: nested deeper than %d levels", abi.MaxDepth)
		}
		if t == '{' {
			return c.object(depth)
		}
		return c.array(depth)
	case string:
		c.out = mp.AppendString(c.out, t)
	case json.Number:
		return c.number(t)
	case bool:
		c.out = mp.AppendBool(c.out, t)
	case nil:
		c.out = mp.AppendNil(c.out)
	}
	return nil
}

func (c *j2m) number(n json.Number) error {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			c.out = mp.AppendInt(c.out, i)
			return nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			c.out = mp.AppendUint(c.out, u)
			return nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return badRequest("malformed JSON body: number %s does not fit a 64-bit integer or float", s)
	}
	c.out = mp.AppendFloat64(c.out, f)
	return nil
}

// headerRoom is the largest map or array header; containers reserve it and
// shrink it to the canonical size once their length is known.
const headerRoom = 5

func (c *j2m) object(depth int) error {
	at := len(c.out)
	c.out = append(c.out, make([]byte, headerRoom)...)
	n := 0
	var seen uniqueKeys[string]
	for c.dec.More() {
		tok, err := c.next()
		if err != nil {
			return err
		}
		key := tok.(string) // json.Decoder only gives strings in key position
		if !seen.add(key) {
			return badRequest("malformed JSON body: the name %q appears twice in one object", key)
		}
		val, err := c.next()
		if err != nil {
			return err
		}
		if s, ok := val.(string); ok && n == 0 && key == b64Field && !c.dec.More() {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return badRequest("malformed JSON body: bad %s value: %v", b64Field, err)
			}
			if _, err := c.next(); err != nil { // '}'
				return err
			}
			c.out = mp.AppendBytes(c.out[:at], b)
			return nil
		}
		c.out = mp.AppendString(c.out, key)
		if err := c.value(val, depth+1); err != nil {
			return err
		}
		n++
	}
	if _, err := c.next(); err != nil { // '}'
		return err
	}
	c.fixHeader(at, mp.AppendMapHeader(nil, n))
	return nil
}

func (c *j2m) array(depth int) error {
	at := len(c.out)
	c.out = append(c.out, make([]byte, headerRoom)...)
	n := 0
	for c.dec.More() {
		tok, err := c.next()
		if err != nil {
			return err
		}
		if err := c.value(tok, depth+1); err != nil {
			return err
		}
		n++
	}
	if _, err := c.next(); err != nil { // ']'
		return err
	}
	c.fixHeader(at, mp.AppendArrayHeader(nil, n))
	return nil
}

// fixHeader writes hdr at the reserved room at, moving the elements down.
func (c *j2m) fixHeader(at int, hdr []byte) {
	copy(c.out[at+len(hdr):], c.out[at+headerRoom:])
	copy(c.out[at:], hdr)
	c.out = c.out[:len(c.out)-(headerRoom-len(hdr))]
}

// msgpackToJSON appends the JSON form of a plugin's MsgPack payload to dst.
func msgpackToJSON(dst, data []byte) []byte {
	if len(data) == 0 {
		return append(dst, "null"...)
	}
	if abi.Validate(data) != nil {
		return appendB64Object(dst, data)
	}
	r := mp.NewReader(data)
	out, err := appendJSONValue(dst, r)
	if err != nil { // cannot happen after Validate; never emit half a document
		return appendB64Object(dst, data)
	}
	return out
}

func appendB64Object(dst, b []byte) []byte {
	dst = append(dst, `{"$b64":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, `"}`...)
}

// appendBytesJSON appends bytes as a JSON string if they are UTF-8, else as a
// $b64 object.
func appendBytesJSON(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return appendJSONString(dst, b)
	}
	return appendB64Object(dst, b)
}

var errMsgpack = errors.New("httpapi: malformed MsgPack")

// appendJSONValue converts the next MsgPack value (known to be well-formed
// and at most abi.MaxDepth deep).
func appendJSONValue(dst []byte, r *mp.Reader) ([]byte, error) {
	switch r.Peek() {
	case mp.TypeNil:
		if err := r.ReadNil(); err != nil {
			return dst, err
		}
		return append(dst, "null"...), nil
	case mp.TypeBool:
		b, err := r.ReadBool()
		if err != nil {
			return dst, err
		}
		return strconv.AppendBool(dst, b), nil
	case mp.TypeInt:
		raw, err := r.ReadRaw()
		if err != nil {
			return dst, err
		}
		return appendIntJSON(dst, raw)
	case mp.TypeFloat:
		raw, err := r.ReadRaw()
		if err != nil {
			return dst, err
		}
		var f float64
		bits := 64
		switch {
		case raw[0] == 0xca && len(raw) == 5:
			f, bits = float64(math.Float32frombits(binary.BigEndian.Uint32(raw[1:]))), 32
		case raw[0] == 0xcb && len(raw) == 9:
			f = math.Float64frombits(binary.BigEndian.Uint64(raw[1:]))
		default:
			return dst, errMsgpack
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(dst, "null"...), nil
		}
		return strconv.AppendFloat(dst, f, 'g', -1, bits), nil
	case mp.TypeStr, mp.TypeBin:
		b, err := r.ReadBytes()
		if err != nil {
			return dst, err
		}
		return appendBytesJSON(dst, b), nil
	case mp.TypeArray:
		n, err := r.ReadArrayHeader()
		if err != nil {
			return dst, err
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendJSONValue(dst, r); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case mp.TypeMap:
		n, err := r.ReadMapHeader()
		if err != nil {
			return dst, err
		}
		dst = append(dst, '{')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendJSONKey(dst, r); err != nil {
				return dst, err
			}
			dst = append(dst, ':')
			if dst, err = appendJSONValue(dst, r); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case mp.TypeExt:
		raw, err := r.ReadRaw()
		if err != nil {
			return dst, err
		}
		typ, data, err := extParts(raw)
		if err != nil {
			return dst, err
		}
		dst = append(dst, `{"$ext":`...)
		dst = strconv.AppendInt(dst, int64(typ), 10)
		dst = append(dst, `,"$b64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, data)
		return append(dst, `"}`...), nil
	}
	return dst, errMsgpack
}

// appendJSONKey converts a map key: a UTF-8 str or bin as is, anything else
// as the JSON text of its conversion.
func appendJSONKey(dst []byte, r *mp.Reader) ([]byte, error) {
	if t := r.Peek(); t == mp.TypeStr || t == mp.TypeBin {
		b, err := r.ReadBytes()
		if err != nil {
			return dst, err
		}
		if utf8.Valid(b) {
			return appendJSONString(dst, b), nil
		}
		return appendJSONString(dst, appendB64Object(nil, b)), nil
	}
	text, err := appendJSONValue(nil, r)
	if err != nil {
		return dst, err
	}
	return appendJSONString(dst, text), nil
}

// appendIntJSON converts the encoding of a MsgPack integer.
func appendIntJSON(dst, raw []byte) ([]byte, error) {
	c := raw[0]
	switch {
	case c <= 0x7f:
		return strconv.AppendUint(dst, uint64(c), 10), nil
	case c >= 0xe0:
		return strconv.AppendInt(dst, int64(int8(c)), 10), nil
	}
	b := raw[1:]
	switch {
	case c == 0xcc && len(b) == 1:
		return strconv.AppendUint(dst, uint64(b[0]), 10), nil
	case c == 0xcd && len(b) == 2:
		return strconv.AppendUint(dst, uint64(binary.BigEndian.Uint16(b)), 10), nil
	case c == 0xce && len(b) == 4:
		return strconv.AppendUint(dst, uint64(binary.BigEndian.Uint32(b)), 10), nil
	case c == 0xcf && len(b) == 8:
		return strconv.AppendUint(dst, binary.BigEndian.Uint64(b), 10), nil
	case c == 0xd0 && len(b) == 1:
		return strconv.AppendInt(dst, int64(int8(b[0])), 10), nil
	case c == 0xd1 && len(b) == 2:
		return strconv.AppendInt(dst, int64(int16(binary.BigEndian.Uint16(b))), 10), nil
	case c == 0xd2 && len(b) == 4:
		return strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(b))), 10), nil
	case c == 0xd3 && len(b) == 8:
		return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(b)), 10), nil
	}
	return dst, errMsgpack
}

// extParts splits the encoding of a MsgPack ext into its type and data.
func extParts(raw []byte) (int8, []byte, error) {
	var hdr int
	switch raw[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
		hdr = 1
	case 0xc7:
		hdr = 2
	case 0xc8:
		hdr = 3
	case 0xc9:
		hdr = 5
	default:
		return 0, nil, errMsgpack
	}
	if len(raw) < hdr+1 {
		return 0, nil, errMsgpack
	}
	return int8(raw[hdr]), raw[hdr+1:], nil
}

// uniqueKeys is the set of an object's names so far: a scan of a few on
// the stack (a command's object has a handful), a map past them. A []byte
// key is kept as given (MsgPack keys alias the body), and copied only into
// the map.
type uniqueKeys[K string | []byte] struct {
	few  [8]K
	n    int
	many map[string]bool
}

// add adds key and reports whether it was new.
func (u *uniqueKeys[K]) add(key K) bool {
	if u.many == nil && u.n < len(u.few) {
		for _, k := range u.few[:u.n] {
			if string(k) == string(key) {
				return false
			}
		}
		u.few[u.n] = key
		u.n++
		return true
	}
	if u.many == nil {
		u.many = make(map[string]bool, 2*len(u.few))
		for _, k := range u.few {
			u.many[string(k)] = true
		}
	}
	if u.many[string(key)] {
		return false
	}
	u.many[string(key)] = true
	return true
}

// uniqueMapKeys refuses a MsgPack body, known to be well-formed, in which a
// map has a key twice: a plugin's decoder would keep one of them silently,
// as encoding/json keeps the last of a JSON name given twice. A str and a
// bin key with the same bytes are the same key (the kv plugin and the JSON
// form do not tell them apart), and so are two encodings of one integer.
// Nesting deeper than abi.MaxDepth is refused.
func uniqueMapKeys(data []byte) error {
	r := mp.NewReader(data)
	return uniqueMapKeysIn(r, 0)
}

func uniqueMapKeysIn(r *mp.Reader, depth int) error {
	t := r.Peek()
	if t != mp.TypeArray && t != mp.TypeMap {
		return r.Skip()
	}
	if depth >= abi.MaxDepth {
		return badRequest("malformed MsgPack body: nested deeper than %d levels", abi.MaxDepth)
	}
	if t == mp.TypeArray {
		n, err := r.ReadArrayHeader()
		for i := 0; i < n && err == nil; i++ {
			err = uniqueMapKeysIn(r, depth+1)
		}
		return err
	}
	n, err := r.ReadMapHeader()
	if err != nil {
		return err
	}
	var strs, others uniqueKeys[[]byte] // str and bin keys; any other key by its encoding
	for range n {
		var key []byte
		var isStr, added bool
		if t := r.Peek(); t == mp.TypeStr || t == mp.TypeBin {
			key, err = r.ReadBytes()
			isStr, added = true, strs.add(key)
		} else if key, err = r.ReadRaw(); err == nil {
			if t == mp.TypeInt { // the decimal text, which no other encoding begins like
				if key, err = appendIntJSON(nil, key); err != nil {
					return err
				}
			}
			added = others.add(key)
		}
		if err != nil {
			return err
		}
		if !added {
			return badRequest("malformed MsgPack body: the key %s appears twice in one map", displayKey(key, isStr))
		}
		if err := uniqueMapKeysIn(r, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// displayKey shows a repeated MsgPack key in an error message: a string
// quoted (cut to 64 bytes), an integer in decimal, anything else as JSON.
func displayKey(key []byte, isStr bool) string {
	const max = 64
	if isStr {
		if len(key) > max {
			return strconv.Quote(string(key[:max])) + "..."
		}
		return strconv.Quote(string(key))
	}
	if c := key[0]; c == '-' || c >= '0' && c <= '9' {
		return string(key)
	}
	return string(msgpackToJSON(nil, key))
}
