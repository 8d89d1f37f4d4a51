// Package mptext renders MsgPack values as text for golden test files:
// nil, true, 42, -1, "str" (a run of one repeated character as "c"*N),
// b"bin", [a, b], {"k": v}, and x"hex" for what it does not spell (floats,
// extensions). The datadriven scripts of plugins/kv/kvstore and
// internal/fsm show results in it.
package mptext

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/raftkv/raftkv/abi/mp"
)

// Format renders b, which must be exactly one MsgPack value.
func Format(b []byte) (string, error) {
	r := mp.NewReader(b)
	var out strings.Builder
	if err := write(&out, r); err != nil {
		return "", err
	}
	if r.Len() != 0 {
		return "", fmt.Errorf("%d bytes follow the value", r.Len())
	}
	return out.String(), nil
}

func write(out *strings.Builder, r *mp.Reader) error {
	switch t := r.Peek(); t {
	case mp.TypeNil:
		out.WriteString("nil")
		return r.ReadNil()
	case mp.TypeBool:
		v, err := r.ReadBool()
		out.WriteString(strconv.FormatBool(v))
		return err
	case mp.TypeInt:
		if v, err := r.ReadUint64(); err == nil {
			out.WriteString(strconv.FormatUint(v, 10))
			return nil
		}
		v, err := r.ReadInt64()
		out.WriteString(strconv.FormatInt(v, 10))
		return err
	case mp.TypeStr, mp.TypeBin:
		v, err := r.ReadBytes()
		if t == mp.TypeBin {
			out.WriteByte('b')
		}
		out.WriteString(Quote(v))
		return err
	case mp.TypeArray, mp.TypeMap:
		var n int
		var err error
		open, closing := "[", "]"
		if t == mp.TypeMap {
			open, closing = "{", "}"
			n, err = r.ReadMapHeader()
		} else {
			n, err = r.ReadArrayHeader()
		}
		if err != nil {
			return err
		}
		out.WriteString(open)
		for i := 0; i < n; i++ {
			if i > 0 {
				out.WriteString(", ")
			}
			if err := write(out, r); err != nil {
				return err
			}
			if t == mp.TypeMap {
				out.WriteString(": ")
				if err := write(out, r); err != nil {
					return err
				}
			}
		}
		out.WriteString(closing)
		return nil
	}
	raw, err := r.ReadRaw()
	fmt.Fprintf(out, "x%q", hex.EncodeToString(raw))
	return err
}

// Quote writes a byte string as "..." (Go syntax), a run of more than 16
// of one ASCII character as "c"*N.
func Quote(b []byte) string {
	if len(b) > 16 && bytes.Count(b, b[:1]) == len(b) && b[0] < utf8.RuneSelf {
		return strconv.Quote(string(b[:1])) + "*" + strconv.Itoa(len(b))
	}
	return strconv.Quote(string(b))
}
