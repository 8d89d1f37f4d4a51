package sdk

import (
	"encoding/binary"

	"github.com/raftkv/raftkv/abi/mp"
)

// Decoding of the ABI's Batch (the input of raftkv_apply).

// readEntry decodes one batch Entry [index, term, time, data] of any valid
// encoding. Data is a sub-slice of the input buffer.
func readEntry(r *mp.Reader) (Entry, error) {
	var e Entry
	n, err := r.ReadArrayHeader()
	if err != nil {
		return e, err
	}
	if n < 4 {
		return e, mp.ErrType
	}
	if e.Index, err = r.ReadUint64(); err != nil {
		return e, err
	}
	if e.Term, err = r.ReadUint64(); err != nil {
		return e, err
	}
	if e.Time, err = r.ReadInt64(); err != nil {
		return e, err
	}
	if e.Data, err = readBytesOrNil(r); err != nil {
		return e, err
	}
	for ; n > 4; n-- { // fields added by a later ABI revision
		if err := r.Skip(); err != nil {
			return e, err
		}
	}
	return e, nil
}

// readBytesOrNil reads a bin or str, or a nil as an empty slice: encoders
// such as msgpack/v5 write a nil []byte as nil.
func readBytesOrNil(r *mp.Reader) ([]byte, error) {
	if r.Peek() == mp.TypeNil {
		return nil, r.ReadNil()
	}
	return r.ReadBytes()
}

// decodeEntry decodes the batch Entry at b[off:] into e and returns the offset
// after it. It is the SDK's per-command cost, written for Go's wasm code,
// where calls, loops and branches are costly: it first checks for the layout
// of msgpack/v5's encoding of abi.Entry, which a Go host most likely uses
// (uint64, uint64, int64 at full width, then a bin), then tries
// decodeEntryCompact. ok is false if neither applies (a short last entry, a
// nil data), and readEntry, which gives the same answer whenever these
// succeed, takes over.
func decodeEntry(b []byte, off int, e *Entry) (next int, ok bool) {
	if len(b)-off < entryHead {
		return 0, false
	}
	h := (*[entryHead]byte)(b[off : off+entryHead])
	if h[0] != 0x94 || h[1] != 0xcf || h[10] != 0xcf || h[19] != 0xd3 || h[28] < 0xc4 || h[28] > 0xc6 {
		return decodeEntryCompact(b, off, e)
	}
	var n, p int
	switch h[28] {
	case 0xc4:
		n, p = int(h[29]), 30
	case 0xc5:
		n, p = int(binary.BigEndian.Uint16(h[29:31])), 31
	default:
		n, p = int(binary.BigEndian.Uint32(h[29:33])), 33
	}
	off += p
	e.Index = binary.BigEndian.Uint64(h[2:10])
	e.Term = binary.BigEndian.Uint64(h[11:19])
	e.Time = int64(binary.BigEndian.Uint64(h[20:28]))
	if int64(e.Index) < 0 || int64(e.Term) < 0 || n > len(b)-off {
		return 0, false
	}
	e.Data = b[off : off+n : off+n]
	return off + n, true
}

// decodeEntryCompact decodes an Entry with integers of any encoding (the
// compact form most encoders use) in one unrolled pass; see decodeEntry.
// b[off:] holds at least entryHead bytes.
func decodeEntryCompact(b []byte, off int, e *Entry) (next int, ok bool) {
	h := (*[entryHead]byte)(b[off : off+entryHead])
	if h[0] != 0x94 {
		return 0, false
	}
	// Integers: v is the payload of width w (0 for a fixint) after header c;
	// signed encodings (0xd0..0xd3, negative fixints) are sign-extended.
	p := 1
	c := h[p]
	w := uint(intWidth[c])
	index := binary.BigEndian.Uint64(h[p+1:p+9]) >> (64 - 8*w)
	if w == 0 {
		index = uint64(int64(int8(c)))
	} else if c >= 0xd0 {
		index = uint64(int64(index<<(64-8*w)) >> (64 - 8*w))
	}
	bad := w > 8 || int64(index) < 0
	p += 1 + int(w)

	c = h[p]
	w = uint(intWidth[c])
	term := binary.BigEndian.Uint64(h[p+1:p+9]) >> (64 - 8*w)
	if w == 0 {
		term = uint64(int64(int8(c)))
	} else if c >= 0xd0 {
		term = uint64(int64(term<<(64-8*w)) >> (64 - 8*w))
	}
	bad = bad || w > 8 || int64(term) < 0
	p += 1 + int(w)

	c = h[p]
	w = uint(intWidth[c])
	t := binary.BigEndian.Uint64(h[p+1:p+9]) >> (64 - 8*w)
	if w == 0 {
		t = uint64(int64(int8(c)))
	} else if c >= 0xd0 {
		t = uint64(int64(t<<(64-8*w)) >> (64 - 8*w))
	}
	bad = bad || w > 8 || (c == 0xcf && int64(t) < 0)
	p += 1 + int(w)
	if bad {
		return 0, false
	}

	// Data: bin or str.
	c = h[p]
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
		p++
	case c == 0xc4 || c == 0xd9:
		n = int(h[p+1])
		p += 2
	case c == 0xc5 || c == 0xda:
		n = int(binary.BigEndian.Uint16(h[p+1 : p+3]))
		p += 3
	case c == 0xc6 || c == 0xdb:
		n = int(binary.BigEndian.Uint32(h[p+1 : p+5]))
		p += 5
	default:
		return 0, false
	}
	off += p
	if n > len(b)-off {
		return 0, false
	}
	*e = Entry{Index: index, Term: term, Time: int64(t), Data: b[off : off+n : off+n]}
	return off + n, true
}

// entryHead is the most header bytes decodeEntry reads: the array header,
// three integers (9 bytes at most, and it reads 9 even for shorter ones) and
// the data header.
const entryHead = 1 + 3*9 + 5

// intWidth[c] is the number of bytes after the integer header byte c (0 for
// a fixint), or 9 if c does not start an integer (decodeEntry then still
// stays within entryHead before it gives up).
var intWidth = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c <= 0x7f || c >= 0xe0:
			t[c] = 0
		case c == 0xcc || c == 0xd0:
			t[c] = 1
		case c == 0xcd || c == 0xd1:
			t[c] = 2
		case c == 0xce || c == 0xd2:
			t[c] = 4
		case c == 0xcf || c == 0xd3:
			t[c] = 8
		default:
			t[c] = 9
		}
	}
	return t
}()
