package fsm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/sdknative"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// engineFSM returns an FSM with the embedded KV plugin active (deployed
// through a log entry), run as the node runs it: trusted wasm, or natively.
func engineFSM(b *testing.B, native bool) *FSM {
	b.Helper()
	ctx := context.Background()
	hash := plugin.HashOf(kvwasm.Module)
	cfg := plugin.DefaultConfig()
	cfg.Trusted = map[string]bool{hash: true}
	cfg.CacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache") // shared with the other tests
	rt, err := plugin.NewRuntime(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	f := New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Runtime: rt, Trust: &trust.Trust{}, QueryInstances: 4})
	if native {
		f.natives = map[string]plugin.Code{hash: sdknative.Code(kvplugin.KV{})}
	}
	b.Cleanup(f.Close)
	env := Envelope{Kind: KindDeploy, Plugin: DefaultPluginName, Payload: kvwasm.Module}
	data, err := env.Encode()
	if err != nil {
		b.Fatal(err)
	}
	if r := f.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: data}})[0].(*Result); r.Err != nil {
		b.Fatal(r.Err)
	}
	return f
}

// BenchmarkFSMApply measures fsm.ApplyBatch on batches of SET commands (16-byte
// keys, 100-byte values) as Raft hands them over, with the KV plugin in wasm
// and natively: host/plugin's BenchmarkApply plus what the node adds
// (decoding each entry's envelope, grouping the batch by plugin, the store
// update, one result per entry).
func BenchmarkFSMApply(b *testing.B) {
	for _, engine := range []string{"wasm", "native"} {
		for _, size := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/batch=%d", engine, size), func(b *testing.B) {
				f := engineFSM(b, engine == "native")
				if got := f.Plugin(DefaultPluginName).Engine(); got != engine {
					b.Fatalf("kv runs on %s", got)
				}
				const pool = 1 << 16 // distinct keys, reused across iterations
				val := make([]byte, 100)
				batches := make([][]*raft.Log, pool/size+1)
				index := uint64(2)
				for i := range batches {
					batches[i] = make([]*raft.Log, size)
					for j := range batches[i] {
						cmd := kvstore.Command{Op: kvstore.OpSet, Key: fmt.Appendf(nil, "key-%012d", index), Value: val}.AppendMsgpack(nil)
						env := Envelope{Kind: KindCommand, Time: int64(index), Plugin: DefaultPluginName, Payload: cmd}
						data, err := env.Encode()
						if err != nil {
							b.Fatal(err)
						}
						batches[i][j] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
						index++
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					out := f.ApplyBatch(batches[i%len(batches)])
					if r := out[0].(*Result); r.Err != nil || !r.Res.OK() {
						b.Fatalf("SET: %v %v", r.Err, r.Res.Err())
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "cmds/s")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/cmd")
			})
		}
	}
}
