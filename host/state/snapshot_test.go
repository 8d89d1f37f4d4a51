package state

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// sample builds a store with several namespaces, an empty namespace, empty
// values and binary keys.
func sample() *Store {
	s := New()
	s.Update(func() {
		a := s.Namespace("alpha")
		a.Set([]byte("k1"), []byte("v1"), 10)
		a.Set([]byte("k2"), nil, 11)
		s.Namespace("empty")
		b := s.Namespace("\x00binary\xff")
		for i := 0; i < 40; i++ {
			b.Set([]byte{0xff, byte(i), 0x00}, bytes.Repeat([]byte{byte(i)}, i), uint64(1)<<40+uint64(i))
		}
		b.Set([]byte{0x00}, []byte{0xff}, 1)
	})
	return s
}

func encode(t testing.TB, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.View().WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// contents describes a store completely, for equality checks.
func contents(s *Store) map[string][]record {
	out := map[string][]record{}
	v := s.View()
	for _, name := range v.Names() {
		nv, _ := v.Namespace(name)
		out[name] = append([]record{}, scanAll(nv, nil, nil, 0)...)
	}
	return out
}

func sameContents(a, b map[string][]record) bool {
	if len(a) != len(b) {
		return false
	}
	for k, ra := range a {
		rb, ok := b[k]
		if !ok || !slices.Equal(ra, rb) {
			return false
		}
	}
	return true
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := sample()
	data := encode(t, src)
	dst := New()
	kept := dst.Namespace("alpha") // existing *Namespace stays valid
	gone := dst.Namespace("gone")  // absent from the stream: dropped
	dst.Update(func() {
		kept.Set([]byte("old"), nil, 1)
		gone.Set([]byte("old"), nil, 1)
		kept.Begin() // an open command is forgotten
		kept.Set([]byte("open"), nil, 2)
	})
	before := dst.View()
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if !sameContents(contents(src), contents(dst)) {
		t.Fatalf("round trip differs:\n%v\n%v", contents(src), contents(dst))
	}
	if src.View().Digest() != dst.View().Digest() {
		t.Fatal("digests differ after round trip")
	}
	if !bytes.Equal(encode(t, dst), data) {
		t.Fatal("re-encoding is not byte-identical")
	}
	if n, _ := dst.Lookup("alpha"); n != kept || kept.Len() != 2 || kept.InCommand() {
		t.Fatal("existing namespace object not reused, or command not reset")
	}
	for _, name := range src.Names() {
		a, _ := src.Lookup(name)
		b, _ := dst.Lookup(name)
		if a.Bytes() != b.Bytes() {
			t.Fatalf("namespace %q holds %d bytes after the round trip, %d before", name, b.Bytes(), a.Bytes())
		}
	}
	if _, ok := dst.Lookup("gone"); ok || gone.Len() != 0 || gone.Bytes() != 0 {
		t.Fatal("namespace absent from the stream not dropped")
	}
	if nv, _ := before.Namespace("gone"); nv.Len() != 1 {
		t.Fatal("Restore changed an older view")
	}
	if nv, _ := dst.View().Namespace("empty"); nv.Len() != 0 {
		t.Fatal("empty namespace")
	}

	// An empty store round-trips too.
	empty := encode(t, New())
	if err := dst.Restore(bytes.NewReader(empty)); err != nil {
		t.Fatal(err)
	}
	if len(dst.Names()) != 0 || len(dst.View().Names()) != 0 {
		t.Fatal("restoring an empty store left namespaces")
	}
}

// TestSnapshotComposes checks that Restore stops exactly at the end of the
// stream when given an io.ByteReader, so other data may follow it.
func TestSnapshotComposes(t *testing.T) {
	data := append(encode(t, sample()), "TRAILING"...)
	br := bufio.NewReader(bytes.NewReader(data))
	if err := New().Restore(br); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "TRAILING" {
		t.Fatalf("after Restore the reader holds %q", rest)
	}
	// A plain io.Reader works too (buffered internally).
	if err := New().Restore(io.MultiReader(bytes.NewReader(data[:10]), bytes.NewReader(data[10:]))); err != nil {
		t.Fatal(err)
	}
}

func mustCorrupt(t *testing.T, s *Store, stream []byte, what string) {
	t.Helper()
	before := contents(s)
	err := s.Restore(bytes.NewReader(stream))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: Restore error %v, want ErrCorrupt", what, err)
	}
	if !strings.HasPrefix(err.Error(), "state: ") {
		t.Fatalf("%s: error %q lacks the package prefix", what, err)
	}
	if !sameContents(before, contents(s)) {
		t.Fatalf("%s: failed Restore changed the store", what)
	}
}

func TestSnapshotCorruption(t *testing.T) {
	data := encode(t, sample())
	s := New()
	s.Update(func() { s.Namespace("keep").Set([]byte("k"), []byte("v"), 7) })

	for i := range data {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := slices.Clone(data)
			bad[i] ^= mask
			mustCorrupt(t, s, bad, "byte "+string(rune('0'+i%10)))
		}
	}
	for n := 0; n < len(data); n++ {
		mustCorrupt(t, s, data[:n], "truncated")
	}
	bad := slices.Clone(data)
	copy(bad, "XXXSTATE")
	err := s.Restore(bytes.NewReader(bad))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("wrong magic: %v", err)
	}
}

// craft builds a stream by hand with a valid checksum, to reach the
// structure checks behind it.
func craft(body ...[]byte) []byte {
	var b []byte
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint32(b, snapVersion)
	for _, p := range body {
		b = append(b, p...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestSnapshotStructure(t *testing.T) {
	rec := func(k, v string) []byte {
		b := append(u32(uint32(len(k))), u32(uint32(len(v)))...)
		b = append(b, u64(1)...)
		return append(append(b, k...), v...)
	}
	cases := map[string][]byte{
		"version":          append(append([]byte(snapMagic), u32(2)...), u32(0)...),
		"empty name":       craft(u32(1), u32(0), u64(0)),
		"long name":        craft(u32(1), u32(256), make([]byte, 256), u64(0)),
		"absurd key":       craft(u32(1), u32(1), []byte("n"), u64(1), u32(1<<31), u32(0), u64(1)),
		"absurd value":     craft(u32(1), u32(1), []byte("n"), u64(1), u32(1), u32(0xffffffff), u64(1)),
		"key over limit":   craft(u32(1), u32(1), []byte("n"), u64(1), rec(strings.Repeat("k", 4097), "")),
		"value over limit": craft(u32(1), u32(1), []byte("n"), u64(1), rec("k", strings.Repeat("v", 1<<20+1))),
		"keys out of order": craft(u32(1), u32(1), []byte("n"), u64(2),
			rec("b", ""), rec("a", "")),
		"empty key": craft(u32(1), u32(1), []byte("n"), u64(1), rec("", "x")),
		"duplicate key": craft(u32(1), u32(1), []byte("n"), u64(2),
			rec("a", "1"), rec("a", "2")),
		"names out of order": craft(u32(2), u32(1), []byte("b"), u64(0), u32(1), []byte("a"), u64(0)),
		"duplicate name":     craft(u32(2), u32(1), []byte("a"), u64(0), u32(1), []byte("a"), u64(0)),
		"huge count":         craft(u32(1), u32(1), []byte("n"), u64(1<<62), rec("a", "")),
		"huge ns count":      craft(u32(1<<31), u32(1), []byte("n"), u64(0)),
		"extra record":       craft(u32(1), u32(1), []byte("n"), u64(0), rec("a", "")),
	}
	s := sample()
	for name, stream := range cases {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		mustCorrupt(t, s, stream, name)
		runtime.ReadMemStats(&m1)
		// contents() and the error dominate; nothing sized from a bad length.
		if d := m1.TotalAlloc - m0.TotalAlloc; d > 2<<20+uint64(len(stream))*4 {
			t.Errorf("%s: allocated %d bytes", name, d)
		}
	}
	// Sanity: the crafting helper makes streams Restore accepts.
	ok := craft(u32(2), u32(1), []byte("a"), u64(2), rec("\x00", "x"), rec("\xff", ""), u32(1), []byte("b"), u64(0))
	if err := New().Restore(bytes.NewReader(ok)); err != nil {
		t.Fatalf("crafted valid stream: %v", err)
	}
}

// failingReader serves a prefix of data, then fails.
type failingReader struct {
	data []byte
	n    int
}

var errDisk = errors.New("disk on fire")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errDisk
	}
	n := copy(p[:min(f.n, len(p))], f.data)
	f.data, f.n = f.data[n:], f.n-n
	return n, nil
}

func TestSnapshotReadError(t *testing.T) {
	s := sample()
	before := contents(s)
	err := s.Restore(&failingReader{data: encode(t, sample()), n: 30})
	if !errors.Is(err, errDisk) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Restore = %v, want the reader's error, not ErrCorrupt", err)
	}
	if !sameContents(before, contents(s)) {
		t.Fatal("failed Restore changed the store")
	}
}

type shortWriter struct{ left int }

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errDisk
	}
	w.left -= len(p)
	return len(p), nil
}

func TestSnapshotWriteError(t *testing.T) {
	v := sample().View()
	full, _ := v.WriteTo(io.Discard)
	for _, left := range []int{0, 5, int(full) - 2} {
		n, err := v.WriteTo(&shortWriter{left: left})
		if !errors.Is(err, errDisk) || n != int64(left) {
			t.Fatalf("WriteTo with %d bytes of room = %d, %v", left, n, err)
		}
	}
}

// TestSnapshotLargeValues crosses the writer's buffer with values at the limit.
func TestSnapshotLargeValues(t *testing.T) {
	s := New()
	s.Update(func() {
		ns := s.Namespace("big")
		for i := 0; i < 3; i++ {
			ns.Set(bytes.Repeat([]byte{byte('a' + i)}, 4<<10), bytes.Repeat([]byte{byte(i)}, 1<<20), uint64(i))
		}
		ns.Set([]byte("small"), []byte("v"), 9)
	})
	data := encode(t, s)
	dst := New()
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if s.View().Digest() != dst.View().Digest() {
		t.Fatal("large values did not round-trip")
	}
}

// TestRestoreFillOrder: Restore inserts even records, then odd ones (to fill
// the B-tree's nodes). Whatever the count, odd or even, one record or many
// nodes' worth, the restored namespace holds every record in order, each
// with its own value and version, and re-encodes to the same bytes.
func TestRestoreFillOrder(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 63, 64, 127, 5000, 5001} {
		src := New()
		ns := src.Namespace("ns")
		src.Update(func() {
			for i := 0; i < n; i++ {
				k := fmt.Appendf(nil, "key%06d", i)
				ns.Set(k, fmt.Appendf(nil, "value %d", i), uint64(i+1))
			}
		})
		data := encode(t, src)
		dst := New()
		if err := dst.Restore(bytes.NewReader(data)); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		got, _ := dst.Lookup("ns")
		if got.Len() != n {
			t.Fatalf("n=%d: restored %d records", n, got.Len())
		}
		i := 0
		got.Scan(nil, nil, 0, func(key, value []byte, version uint64) bool {
			if want := fmt.Sprintf("key%06d", i); string(key) != want || string(value) != fmt.Sprintf("value %d", i) || version != uint64(i+1) {
				t.Fatalf("n=%d: record %d is %q=%q v%d, want %q", n, i, key, value, version, want)
			}
			i++
			return true
		})
		if i != n {
			t.Fatalf("n=%d: scanned %d records", n, i)
		}
		if !bytes.Equal(encode(t, dst), data) {
			t.Fatalf("n=%d: re-encoding differs", n)
		}
	}
}
