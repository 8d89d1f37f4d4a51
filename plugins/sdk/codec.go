package sdk

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

// The SDK's one codec for structured data: MsgPack with
// github.com/vmihailenco/msgpack/v5, the library of abi.Marshal and
// abi.Unmarshal, which the SDK links anyway for the ABI's own messages, so a
// plugin pays no extra size for it.
//
// Over HTTP and the CLI a command or query is always one MsgPack value: a
// JSON body is converted to the equivalent MsgPack (object → map, integer →
// int, string → str, {"$b64": …} → bin), and a plugin's result is rendered
// back from MsgPack to JSON. So a plugin's commands are MsgPack maps, and its
// results must be MsgPack too: Result and the Router encode them.
//
// Struct fields are named by their `msgpack:"name"` tag (else the Go field
// name, case-sensitive); `msgpack:"name,omitempty"` drops a zero value;
// unknown fields in the input are ignored; a str decodes into a []byte and
// any integer encoding into any integer type that holds its value, while an
// integer the type cannot hold (-5 into a uint64, 300 into a uint8) fails
// the decoding, a bad_request from Decode, instead of being truncated. Decoding
// checks the input first (abi.Validate), so a malformed or hostile command
// cannot make the decoder allocate more than the input's size.

// Marshal encodes v as MsgPack, integers in their shortest form (5 is the
// one byte 0x05 whatever its Go type) and the keys of Go maps sorted, so
// that the same value encodes to the same bytes on every node (Go
// randomises map iteration; a stored value that differed between replicas
// would make their state digests differ).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return canonical(buf.Bytes())
}

// Unmarshal decodes the MsgPack value data into v (a pointer). The input must
// be exactly one well-formed value.
func Unmarshal(data []byte, v any) error { return abi.Unmarshal(data, v) }

// Result encodes v as a plugin result: MsgPack, which the HTTP API and the
// CLI render as JSON. Return it from Apply or Query:
//
//	return sdk.Result(map[string]any{"count": n})
//
// An encoding failure is reported as abi.CodeInternal. A nil v encodes as
// MsgPack nil (JSON null).
func Result(v any) ([]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, Errorf(abi.CodeInternal, "encoding the result: %v", err)
	}
	return b, nil
}

// Decode decodes a command or query (MsgPack) into a T. A malformed input,
// or one of the wrong shape for T, is an *abi.Error with CodeBadRequest that
// says what was expected.
func Decode[T any](data []byte) (T, error) {
	var v T
	if len(data) == 0 {
		return v, Errorf(abi.CodeBadRequest, "empty input: expected one MsgPack value (a JSON body is converted to one)")
	}
	if err := abi.Unmarshal(data, &v); err != nil {
		var zero T
		if errors.Is(err, abi.ErrMalformed) {
			return zero, Errorf(abi.CodeBadRequest, "malformed MsgPack: %v", err)
		}
		return zero, Errorf(abi.CodeBadRequest, "bad input for %T: %v", v, err)
	}
	return v, nil
}

// BadRequest returns an *abi.Error with abi.CodeBadRequest: a malformed
// command or query, an invalid argument.
func BadRequest(format string, args ...any) error {
	return Errorf(abi.CodeBadRequest, format, args...)
}

// Ensure returns nil if cond holds, else BadRequest(format, args...): the
// rules of a request's Check method, one line each (CosmWasm's ensure!).
// The message is formatted only when cond fails.
//
//	func (r transferReq) Check() error {
//		return sdk.Ensure(r.Amount > 0, "amount must be positive, not %d", r.Amount)
//	}
func Ensure(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return BadRequest(format, args...)
}

// NotFound returns an *abi.Error with abi.CodeNotFound.
func NotFound(format string, args ...any) error {
	return Errorf(abi.CodeNotFound, format, args...)
}

// Conflict returns an *abi.Error with abi.CodeConflict: a precondition does
// not hold (the object exists, the version differs).
func Conflict(format string, args ...any) error {
	return Errorf(abi.CodeConflict, format, args...)
}

// quote bounds a client-supplied string in an error message.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
