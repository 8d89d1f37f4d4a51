package logstore

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkAppend appends batches of 256-byte entries to each store, fsync
// included (both stores sync every append): what Raft pays on the leader
// and on each follower before a write commits; and single 4 MB entries, the
// size of the entry that deploys kv.wasm, which every node that joins
// appends while it catches up. Run both kinds in one run and compare the
// ratio: go test -run '^$' -bench Append ./host/logstore/
func BenchmarkAppend(b *testing.B) {
	for _, kind := range []string{WAL, Bolt} {
		for _, c := range []struct{ batch, size int }{{1, 256}, {64, 256}, {1, 4 << 20}} {
			batch := c.batch
			b.Run(fmt.Sprintf("%s/batch=%d/entry=%d", kind, batch, c.size), func(b *testing.B) {
				s, _, err := Open(Config{Dir: b.TempDir(), Kind: kind})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				data := make([]byte, c.size)
				logs := make([]*raft.Log, batch)
				next := uint64(1)
				b.SetBytes(int64(batch * len(data)))
				b.ResetTimer()
				for range b.N {
					for i := range logs {
						logs[i] = &raft.Log{Index: next, Term: 1, Data: data}
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			})
		}
	}
}
