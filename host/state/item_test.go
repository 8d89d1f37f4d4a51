package state

import (
	"math/rand/v2"
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
