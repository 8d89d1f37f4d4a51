package state

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// lessItem orders keys as Go orders strings, for keys that share their
// first 8 or 16 bytes, end inside them, or hold zero bytes there (which the
// zero-padded prefixes cannot tell from an end).
func TestLessItemOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	key := func() []byte {
		k := make([]byte, r.IntN(25))
		for i := range k {
			k[i] = []byte{0, 1, 'a', 0xff}[r.IntN(4)]
		}
		return k
	}
	for range 200_000 {
		a, b := key(), key()
		if r.IntN(2) == 0 && len(a) > 0 { // b extends a, or a prefix of a
			b = append(append([]byte(nil), a[:r.IntN(len(a)+1)]...), b...)
		}
		if got, want := lessItem(probe(a), probe(b)), string(a) < string(b); got != want {
			t.Fatalf("lessItem(%q, %q) = %v, want %v", a, b, got, want)
		}
	}
}

func FuzzLessItem(f *testing.F) {
	f.Add([]byte("key-000000000001"), []byte("key-000000000001\x00"))
	f.Add([]byte("abcdefgh\x00"), []byte("abcdefgh"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if got, want := lessItem(probe(a), probe(b)), string(a) < string(b); got != want {
			t.Fatalf("lessItem(%q, %q) = %v, want %v", a, b, got, want)
		}
	})
}

// A search key longer than an item's 16-bit length (a scan bound may be) is
// cut, and still orders against stored keys, which are never that long, as
// the whole key does: scans from and to it see the right keys.
func TestProbeLongKey(t *testing.T) {
	// "c" and 65,538 a's: its length mod 2^16 is 3, and uncut it would
	// carry into the prefix as "caaaab" and sort after "caaaaaz".
	long := append([]byte("c"), bytes.Repeat([]byte{'a'}, 1<<16+2)...)
	s := New()
	ns := s.Namespace("ns")
	stored := []string{"b", "caaaaa", strings.Repeat("ca", 2048), "caaaaaz", "d"}
	s.Update(func() {
		for i, k := range stored {
			ns.Set([]byte(k), []byte{byte(i)}, uint64(i+1))
		}
	})
	for _, k := range stored {
		it, _ := ns.tree.Get(probe([]byte(k)))
		if got, want := lessItem(it, probe(long)), k < string(long); got != want {
			t.Errorf("lessItem(%.8q…, long) = %v, want %v", k, got, want)
		}
		if got, want := lessItem(probe(long), it), string(long) < k; got != want {
			t.Errorf("lessItem(long, %.8q…) = %v, want %v", k, got, want)
		}
	}
	var from, to []string
	ns.Scan(long, nil, 0, func(k, v []byte, ver uint64) bool { from = append(from, string(k)); return true })
	ns.Scan(nil, long, 0, func(k, v []byte, ver uint64) bool { to = append(to, string(k)); return true })
	if want := []string{"caaaaaz", strings.Repeat("ca", 2048), "d"}; !slices.Equal(from, want) {
		t.Errorf("scan from the long key: %.8q, want %.8q", from, want)
	}
	if want := []string{"b", "caaaaa"}; !slices.Equal(to, want) {
		t.Errorf("scan to the long key: %.8q, want %.8q", to, want)
	}
}
