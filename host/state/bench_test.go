package state

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

const (
	benchKeys   = 1_000_000
	benchKeyLen = 16
	benchValLen = 100
	benchBatch  = 1000 // Sets per Update, like an applied Raft batch
)

// randKeys returns n random 16-byte keys in one backing array.
func randKeys(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, n*benchKeyLen)
	for i := 0; i < len(buf); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = buf[i*benchKeyLen : (i+1)*benchKeyLen : (i+1)*benchKeyLen]
	}
	return keys
}

func benchValue() []byte { return bytes.Repeat([]byte{'v'}, benchValLen) }

// benchSet inserts b.N new keys in batches of benchBatch per Update.
// command wraps every Set in Begin/Commit; view takes a View after every
// batch (as a busy reader would), which makes the next writes copy nodes.
func benchSet(b *testing.B, command, view bool) {
	keys := randKeys(1, b.N)
	val := benchValue()
	s := New()
	ns := s.Namespace("bench")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += benchBatch {
		end := min(i+benchBatch, b.N)
		s.Update(func() {
			for j := i; j < end; j++ {
				if command {
					ns.Begin()
					ns.Set(keys[j], val, uint64(j))
					ns.Commit()
				} else {
					ns.Set(keys[j], val, uint64(j))
				}
			}
		})
		if view {
			s.View()
		}
	}
	b.StopTimer()
	if ns.Len() != b.N {
		b.Fatalf("Len = %d, want %d", ns.Len(), b.N)
	}
}

func BenchmarkSet(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchSet(b, false, false) })
	b.Run("command", func(b *testing.B) { benchSet(b, true, false) })
	b.Run("command+view", func(b *testing.B) { benchSet(b, true, true) })
}

// fixture is a store of benchKeys keys, built once and shared.
type fixture struct {
	store      *Store
	keys       [][]byte
	stream     []byte
	heapPerKey float64
}

var (
	fixOnce sync.Once
	fix     fixture
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func getFixture(b *testing.B) *fixture {
	fixOnce.Do(func() {
		keys := randKeys(2, benchKeys)
		val := benchValue()
		before := heapInUse()
		s := New()
		s.Update(func() {
			ns := s.Namespace("bench")
			for i, k := range keys {
				ns.Set(k, val, uint64(i+1))
			}
		})
		fix.heapPerKey = float64(heapInUse()-before) / benchKeys
		var buf bytes.Buffer
		if _, err := s.View().WriteTo(&buf); err != nil {
			panic(err)
		}
		fix.store, fix.keys, fix.stream = s, keys, buf.Bytes()
	})
	return &fix
}

func BenchmarkGet(b *testing.B) {
	f := getFixture(b)
	ns, _ := f.store.Lookup("bench")
	// Lookup keys laid out contiguously in random order, so that the loop
	// itself adds no cache misses.
	rng := rand.New(rand.NewPCG(3, 3))
	lookups := make([]byte, 0, b.N*benchKeyLen)
	for i := 0; i < b.N; i++ {
		lookups = append(lookups, f.keys[rng.IntN(len(f.keys))]...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, ok := ns.Get(lookups[i*benchKeyLen : (i+1)*benchKeyLen]); !ok {
			b.Fatal("missing key")
		}
	}
	b.StopTimer()
	b.ReportMetric(f.heapPerKey, "heapB/key")
}

func BenchmarkSnapshotPersist(b *testing.B) {
	f := getFixture(b)
	v := f.store.View()
	var buf bytes.Buffer
	if _, err := v.WriteTo(&buf); err != nil { // warm up: fault the buffer's pages in
		b.Fatal(err)
	}
	b.SetBytes(int64(len(f.stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if _, err := v.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(f.stream))/benchKeys, "streamB/key")
	b.ReportMetric(f.heapPerKey, "heapB/key")
}

func BenchmarkRestore(b *testing.B) {
	f := getFixture(b)
	b.SetBytes(int64(len(f.stream)))
	b.ReportAllocs()
	var s *Store
	before := heapInUse()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s = New()
		if err := s.Restore(bytes.NewReader(f.stream)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(f.stream))/benchKeys, "streamB/key")
	if b.N == 1 {
		b.ReportMetric(float64(heapInUse()-before)/benchKeys, "heapB/key")
	}
	runtime.KeepAlive(s)
}

// BenchmarkScan100 reads 100 consecutive records from a random start in the
// 1M-key fixture and copies their keys and values out, as a state_scan of
// limit 100 does into the guest's memory.
func BenchmarkScan100(b *testing.B) {
	f := getFixture(b)
	ns, _ := f.store.Lookup("bench")
	rng := rand.New(rand.NewPCG(4, 4))
	out := make([]byte, 0, 100*(benchKeyLen+benchValLen))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		out = out[:0]
		ns.Scan(f.keys[rng.IntN(len(f.keys))], nil, 100, func(k, v []byte, ver uint64) bool {
			out = append(append(out, k...), v...)
			n++
			return true
		})
		if n == 0 { // the start key exists, so at least it is visited
			b.Fatal("scan visited nothing")
		}
	}
}
