package raftauth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// reader reads one request's MsgPack from br, keeping every byte it reads
// in buf. It decodes only what the check needs and skips the rest in bulk:
// an AppendEntries request may carry megabytes of entries, which Raft
// decodes afterwards.
type reader struct {
	br  *bufio.Reader
	buf []byte
}

// maxDepth bounds the nesting of skipped values (Raft's requests nest
// three deep).
const maxDepth = 16

var errFormat = errors.New("malformed MsgPack")

func (r *reader) byte() (byte, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, noEOF(err)
	}
	r.buf = append(r.buf, b)
	return b, nil
}

// bytes reads n bytes and returns them (a slice of buf: valid until the
// next read).
func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > 1<<40 {
		return nil, fmt.Errorf("%w: length %d", errFormat, n)
	}
	start := len(r.buf)
	for n > 0 { // grow as data arrives: a peer cannot make us allocate more than it sends
		chunk := min(n, 1<<20)
		r.buf = append(r.buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(r.br, r.buf[len(r.buf)-int(chunk):]); err != nil {
			return nil, noEOF(err)
		}
		n -= chunk
	}
	return r.buf[start:], nil
}

func (r *reader) uint(size int) (uint64, error) {
	b, err := r.bytes(uint64(size))
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), nil
	}
	return binary.BigEndian.Uint64(b), nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// mapLen reads a map header.
func (r *reader) mapLen() (uint64, error) {
	b, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case b>>4 == 0x8:
		return uint64(b & 0x0f), nil
	case b == 0xde:
		return r.uint(2)
	case b == 0xdf:
		return r.uint(4)
	}
	return 0, fmt.Errorf("%w: 0x%02x is not a map", errFormat, b)
}

// raw reads a str, bin or nil value and returns its bytes (nil for nil).
func (r *reader) raw() ([]byte, error) {
	b, err := r.byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case b == 0xc0:
		return nil, nil
	case b>>5 == 0x5:
		n = uint64(b & 0x1f)
	case b == 0xd9 || b == 0xc4:
		n, err = r.uint(1)
	case b == 0xda || b == 0xc5:
		n, err = r.uint(2)
	case b == 0xdb || b == 0xc6:
		n, err = r.uint(4)
	default:
		return nil, fmt.Errorf("%w: 0x%02x is not a string", errFormat, b)
	}
	if err != nil {
		return nil, err
	}
	return r.bytes(n)
}

// int reads an integer.
func (r *reader) int() (int64, error) {
	b, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case b <= 0x7f:
		return int64(b), nil
	case b >= 0xe0:
		return int64(int8(b)), nil
	case b >= 0xcc && b <= 0xcf:
		v, err := r.uint(1 << (b - 0xcc))
		if v > 1<<63-1 {
			return 0, fmt.Errorf("%w: integer out of range", errFormat)
		}
		return int64(v), err
	case b >= 0xd0 && b <= 0xd3:
		size := 1 << (b - 0xd0)
		v, err := r.uint(size)
		switch size {
		case 1:
			return int64(int8(v)), err
		case 2:
			return int64(int16(v)), err
		case 4:
			return int64(int32(v)), err
		}
		return int64(v), err
	}
	return 0, fmt.Errorf("%w: 0x%02x is not an integer", errFormat, b)
}

// skip reads one value of any type.
func (r *reader) skip(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested too deep", errFormat)
	}
	b, err := r.byte()
	if err != nil {
		return err
	}
	var n uint64 // bytes to skip
	var items uint64
	switch {
	case b <= 0x7f, b >= 0xe0, b == 0xc0, b == 0xc2, b == 0xc3:
		return nil
	case b>>4 == 0x8:
		items = 2 * uint64(b&0x0f)
	case b>>4 == 0x9:
		items = uint64(b & 0x0f)
	case b>>5 == 0x5:
		n = uint64(b & 0x1f)
	case b == 0xc4, b == 0xd9:
		n, err = r.uint(1)
	case b == 0xc5, b == 0xda:
		n, err = r.uint(2)
	case b == 0xc6, b == 0xdb:
		n, err = r.uint(4)
	case b == 0xc7, b == 0xc8, b == 0xc9: // ext: length, type, data
		n, err = r.uint(1 << (b - 0xc7))
		n++
	case b == 0xca:
		n = 4
	case b == 0xcb:
		n = 8
	case b >= 0xcc && b <= 0xcf:
		n = 1 << (b - 0xcc)
	case b >= 0xd0 && b <= 0xd3:
		n = 1 << (b - 0xd0)
	case b >= 0xd4 && b <= 0xd8: // fixext: type, data
		n = 1 + 1<<(b-0xd4)
	case b == 0xdc:
		items, err = r.uint(2)
	case b == 0xdd:
		items, err = r.uint(4)
	case b == 0xde:
		items, err = r.uint(2)
		items *= 2
	case b == 0xdf:
		items, err = r.uint(4)
		items *= 2
	default:
		return fmt.Errorf("%w: 0x%02x", errFormat, b)
	}
	if err != nil {
		return err
	}
	if _, err := r.bytes(n); err != nil {
		return err
	}
	for ; items > 0; items-- {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// header reads a request map into h. RPCHeader's fields are found inline
// (as hashicorp/go-msgpack encodes an embedded struct) or under an
// "RPCHeader" key.
func (r *reader) header(h *header, depth int) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		key, err := r.raw()
		if err != nil {
			return err
		}
		switch string(key) {
		case "ID":
			h.ID, err = r.rawCopy()
		case "Addr":
			h.Addr, err = r.rawCopy()
		case "Leader":
			h.Leader, err = r.rawCopy()
		case "Candidate":
			h.Candidate, err = r.rawCopy()
		case "Configuration":
			h.Configuration, err = r.rawCopy()
		case "Size":
			h.Size, err = r.int()
		case "Entries":
			err = r.entries(h)
		case "RPCHeader":
			if depth > 0 {
				return fmt.Errorf("%w: nested RPCHeader", errFormat)
			}
			err = r.header(h, depth+1)
		default:
			err = r.skip(1)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
	}
	return nil
}

func (r *reader) rawCopy() ([]byte, error) {
	b, err := r.raw()
	return append([]byte(nil), b...), err
}

// arrayLen reads an array header.
func (r *reader) arrayLen() (uint64, error) {
	b, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case b>>4 == 0x9:
		return uint64(b & 0x0f), nil
	case b == 0xdc:
		return r.uint(2)
	case b == 0xdd:
		return r.uint(4)
	}
	return 0, fmt.Errorf("%w: 0x%02x is not an array", errFormat, b)
}

// entry is where a log entry's type and data are in buf.
type entry struct {
	typ        int64
	start, end int
}

// entries reads AppendEntries' log entries into h.Entries: those of a type
// other than command, no-op and barrier, with where their data is (checked
// once the whole request is read: buf may move meanwhile).
func (r *reader) entries(h *header) error {
	if b, err := r.br.Peek(1); err == nil && b[0] == 0xc0 {
		_, err = r.byte()
		return err
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		var e entry
		fields, err := r.mapLen()
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		for ; fields > 0; fields-- {
			key, err := r.raw()
			if err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			switch string(key) {
			case "Type":
				e.typ, err = r.int()
			case "Data":
				var d []byte
				d, err = r.raw()
				e.end = len(r.buf)
				e.start = e.end - len(d)
			default:
				err = r.skip(2)
			}
			if err != nil {
				return fmt.Errorf("entry %d field %q: %w", i, key, err)
			}
		}
		switch e.typ {
		case int64(raft.LogCommand), int64(raft.LogNoop), int64(raft.LogBarrier):
		default: // checked by the caller
			h.Entries = append(h.Entries, e)
		}
	}
	return nil
}
