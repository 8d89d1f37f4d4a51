package sdk

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

var sinkU uint64

// BenchmarkDecodeEntry measures the batch decoder's per-entry cost on the
// compact encoding (run it for wasm too: it is the SDK's share of every
// command).
func BenchmarkDecodeEntry(b *testing.B) {
	var batch []byte
	for i := 0; i < 512; i++ {
		batch = mp.AppendArrayHeader(batch, 4)
		batch = mp.AppendUint(batch, uint64(1000000+i))
		batch = mp.AppendUint(batch, 3)
		batch = mp.AppendInt(batch, 1700000000000000000)
		batch = mp.AppendBytes(batch, make([]byte, 140))
	}
	off := 0
	var e Entry
	b.ReportAllocs()
	for b.Loop() {
		next, ok := decodeEntry(batch, off, &e)
		if !ok {
			b.Fatal("decode")
		}
		sinkU += e.Index
		off = next
		if off == len(batch) {
			off = 0
		}
	}
}

// BenchmarkDecodeEntryFixedWidth decodes msgpack/v5's encoding of abi.Batch
// (full-width integers), the layout decodeEntry checks first.
func BenchmarkDecodeEntryFixedWidth(b *testing.B) {
	batch, err := msgpack.Marshal(benchBatch())
	if err != nil {
		b.Fatal(err)
	}
	r := mp.NewReader(batch)
	r.ReadArrayHeader()
	start := r.Offset()
	off := start
	var e Entry
	b.ReportAllocs()
	for b.Loop() {
		next, ok := decodeEntry(batch, off, &e)
		if !ok {
			b.Fatal("decode")
		}
		sinkU += e.Index
		off = next
		if off == len(batch) {
			off = start
		}
	}
}

func benchBatch() abi.Batch {
	batch := make(abi.Batch, 512)
	for i := range batch {
		batch[i] = abi.Entry{Index: uint64(1000000 + i), Term: 3, Time: 1700000000000000000, Data: make([]byte, 140)}
	}
	return batch
}
