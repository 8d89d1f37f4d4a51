package sdk

import (
	"bytes"
	"slices"

	"github.com/raftkv/raftkv/abi/mp"
)

// canonical returns the MsgPack value b with the entries of every map, at any
// depth, sorted by key: str and bin keys by their bytes, other keys by their
// encoding (ties by encoding). msgpack/v5 sorts only a few map types itself
// (SetSortMapKeys), and Go randomises map iteration, so without this a
// map[string]int result or stored value would differ from node to node.
func canonical(b []byte) ([]byte, error) {
	if !slices.ContainsFunc(b, isMapHeader) {
		return b, nil // no byte that could start a map: nothing to sort
	}
	var r mp.Reader
	r.Reset(b)
	return canon(make([]byte, 0, len(b)), b, &r)
}

func isMapHeader(c byte) bool { return c&0xf0 == 0x80 || c == 0xde || c == 0xdf }

// canon appends the canonical form of r's next value to dst.
func canon(dst, b []byte, r *mp.Reader) ([]byte, error) {
	switch r.Peek() {
	case mp.TypeArray:
		start := r.Offset()
		n, err := r.ReadArrayHeader()
		if err != nil {
			return nil, err
		}
		dst = append(dst, b[start:r.Offset()]...)
		for range n {
			if dst, err = canon(dst, b, r); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case mp.TypeMap:
		start := r.Offset()
		n, err := r.ReadMapHeader()
		if err != nil {
			return nil, err
		}
		dst = append(dst, b[start:r.Offset()]...)
		type entry struct{ key, kv []byte }
		var buf []byte
		spans := make([][3]int, n) // key start, value start, end in buf
		for i := range n {
			spans[i][0] = len(buf)
			if buf, err = canon(buf, b, r); err != nil {
				return nil, err
			}
			spans[i][1] = len(buf)
			if buf, err = canon(buf, b, r); err != nil {
				return nil, err
			}
			spans[i][2] = len(buf)
		}
		entries := make([]entry, n)
		for i, s := range spans {
			entries[i] = entry{key: buf[s[0]:s[1]], kv: buf[s[0]:s[2]]}
		}
		slices.SortStableFunc(entries, func(x, y entry) int {
			if c := bytes.Compare(keyContent(x.key), keyContent(y.key)); c != 0 {
				return c
			}
			return bytes.Compare(x.key, y.key)
		})
		for _, e := range entries {
			dst = append(dst, e.kv...)
		}
		return dst, nil
	}
	raw, err := r.ReadRaw()
	if err != nil {
		return nil, err
	}
	return append(dst, raw...), nil
}

// keyContent returns the bytes of a str or bin key, else the key's encoding.
func keyContent(k []byte) []byte {
	var r mp.Reader
	r.Reset(k)
	if t := r.Peek(); t == mp.TypeStr || t == mp.TypeBin {
		if b, err := r.ReadBytes(); err == nil {
			return b
		}
	}
	return k
}
