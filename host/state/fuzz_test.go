package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

func FuzzRestore(f *testing.F) {
	valid := [][]byte{encode(f, New()), encode(f, sample())}
	small := New()
	small.Update(func() { small.Namespace("n").Set([]byte("k"), []byte("v"), 1) })
	valid = append(valid, encode(f, small))
	for _, v := range valid {
		f.Add(v)
		f.Add(v[:len(v)-1])
		f.Add(v[:len(v)/2])
		flipped := bytes.Clone(v)
		flipped[len(v)/3] ^= 0x40
		f.Add(flipped)
	}
	f.Add([]byte("RKVSTATE"))
	f.Add(claimsMillions(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New()
		s.Update(func() { s.Namespace("pre").Set([]byte("x"), []byte("y"), 3) })
		before := s.View().Digest()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		r := bytes.NewReader(data)
		err := s.Restore(r)
		runtime.ReadMemStats(&m1)
		// A record may claim up to MaxKeySize+MaxValueSize before the stream
		// turns out short; beyond that, allocation follows the input size.
		if d := m1.TotalAlloc - m0.TotalAlloc; d > 2<<20+uint64(len(data))*100 {
			t.Fatalf("Restore of %d bytes allocated %d bytes", len(data), d)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if s.View().Digest() != before {
				t.Fatal("failed Restore changed the store")
			}
			return
		}
		// Restore consumed exactly one stream (data may follow it, see
		// TestSnapshotComposes), and the format is canonical: what it accepted
		// re-encodes to the same bytes.
		used := data[:len(data)-r.Len()]
		var out bytes.Buffer
		if _, err := s.View().WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), used) {
			t.Fatalf("accepted stream re-encodes differently:\n in %x\nout %x", used, out.Bytes())
		}
	})
}

// claimsMillions is a stream whose one namespace claims 2^40 records and
// holds two: Restore must allocate for what it reads, not for the claim.
func claimsMillions(f *testing.F) []byte {
	small := New()
	small.Update(func() {
		ns := small.Namespace("n")
		ns.Set([]byte("a"), []byte("v"), 1)
		ns.Set([]byte("b"), []byte("v"), 1)
	})
	v := encode(f, small)
	// header 16 bytes, name length 4, name "n", then the record count.
	binary.LittleEndian.PutUint64(v[16+4+1:], 1<<40)
	return v[:len(v)-4]
}
