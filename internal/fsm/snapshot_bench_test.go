package fsm

// BenchmarkSnapshot1M is what a node does when Raft snapshots its FSM and
// when a node restores one. Run it with (make bench-go runs it too):
//
//	go test -run '^$' -bench '^BenchmarkSnapshot1M$' -benchmem ./internal/fsm/

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

const (
	snapBenchKeys   = 1_000_000
	snapBenchKeyLen = 16
	snapBenchValLen = 100
	// snapBenchBatch is how many entries each ApplyBatch gets while loading:
	// Config.MaxAppendEntries, the most Raft hands the FSM at once.
	snapBenchBatch = 512
)

// newSnapFSM returns a fresh FSM on its own plugin runtime, set up as New sets
// up a node's (the embedded KV plugin trusted, compiled code cached in
// cacheDir), as a node restarting from its data directory would have.
func newSnapFSM(b *testing.B, cacheDir string) (*FSM, func()) {
	b.Helper()
	pcfg := plugin.DefaultConfig() // a node's defaults: 512 pages, the plugin call timeout
	pcfg.CacheDir = cacheDir
	pcfg.Trusted = map[string]bool{plugin.HashOf(kvwasm.Module): true}
	rt, err := plugin.NewRuntime(context.Background(), pcfg)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f := New(Config{Log: log, Runtime: rt, Trust: &trust.Trust{}, QueryInstances: 4}) // a node's default QueryInstances
	return f, func() {
		f.Close()
		rt.Close(context.Background())
	}
}

// snapEntry encodes an envelope as the log entry Raft would hand the FSM.
func snapEntry(b *testing.B, index uint64, e Envelope) *raft.Log {
	data, err := e.Encode()
	if err != nil {
		b.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// snapApply applies a batch and fails on any host or plugin error.
func snapApply(b *testing.B, f *FSM, logs []*raft.Log) {
	b.Helper()
	for i, r := range f.ApplyBatch(logs) {
		ar := r.(*Result)
		if ar.Err != nil || !ar.Res.OK() {
			b.Fatalf("applying index %d: %v %v", logs[i].Index, ar.Err, ar.Res.Err())
		}
	}
}

// snapFixture is an FSM holding snapBenchKeys KV keys, loaded once per test
// binary (the benchmark function runs several times as b.N grows).
type snapFixture struct {
	fsm        *FSM
	cacheDir   string
	keys       [][]byte
	value      []byte
	heapPerKey float64
	loadTime   time.Duration
}

var (
	snapFixOnce sync.Once
	snapFix     *snapFixture
)

func snapHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// loadSnapFixture deploys the embedded KV plugin into a fresh FSM and applies
// snapBenchKeys SETs of random 16-byte keys and 100-byte values through it,
// in batches of snapBenchBatch entries: the real apply path (envelope
// decoding, the wasm plugin, the host state functions), only without Raft.
func loadSnapFixture(b *testing.B) *snapFixture {
	snapFixOnce.Do(func() {
		// The cache directory the in-process test clusters share
		// (internal/cluster.SharedCache): usually warm, so deploying does not
		// compile kv.wasm again.
		cacheDir := filepath.Join(os.TempDir(), "raftkv-test-wasm-cache")
		f, _ := newSnapFSM(b, cacheDir) // lives as long as the test binary
		fx := &snapFixture{fsm: f, cacheDir: cacheDir, value: bytes.Repeat([]byte{'v'}, snapBenchValLen)}
		index := uint64(1)
		snapApply(b, f, []*raft.Log{snapEntry(b, index, Envelope{Kind: KindDeploy, Time: 1, Plugin: DefaultPluginName, Payload: kvwasm.Module})})

		rng := rand.New(rand.NewPCG(1, 2))
		keyBuf := make([]byte, snapBenchKeys*snapBenchKeyLen)
		for i := range keyBuf {
			keyBuf[i] = byte(rng.Uint32())
		}
		fx.keys = make([][]byte, snapBenchKeys)
		for i := range fx.keys {
			fx.keys[i] = keyBuf[i*snapBenchKeyLen : (i+1)*snapBenchKeyLen : (i+1)*snapBenchKeyLen]
		}
		before := snapHeap()
		start := time.Now()
		logs := make([]*raft.Log, 0, snapBenchBatch)
		for i := 0; i < snapBenchKeys; i += snapBenchBatch {
			logs = logs[:0]
			for j := i; j < min(i+snapBenchBatch, snapBenchKeys); j++ {
				index++
				cmd := kvstore.Command{Op: kvstore.OpSet, Key: fx.keys[j], Value: fx.value}.AppendMsgpack(nil)
				logs = append(logs, snapEntry(b, index, Envelope{Kind: KindCommand, Time: int64(index), Plugin: DefaultPluginName, Payload: cmd}))
			}
			snapApply(b, f, logs)
		}
		fx.loadTime = time.Since(start)
		b.Logf("loaded %d keys through the FSM in %v (%.0f keys/s)", snapBenchKeys, fx.loadTime, snapBenchKeys/fx.loadTime.Seconds())
		clear(logs)
		fx.heapPerKey = float64(snapHeap()-before) / snapBenchKeys
		ns, ok := f.store.Lookup(DefaultPluginName)
		if !ok || ns.Len() != snapBenchKeys { // random 16-byte keys do not collide
			b.Fatalf("loaded store has %v keys, want %d", ns, snapBenchKeys)
		}
		snapFix = fx
	})
	if snapFix == nil {
		b.Fatal("loading the fixture failed")
	}
	return snapFix
}

// BenchmarkSnapshot1M: a node's FSM holding 1,000,000 KV keys (16-byte keys,
// 100-byte values) is snapshotted and persisted into a raft.FileSnapshotStore
// on disk (with its fsync), and the file is restored into a fresh FSM, as
// Raft does on a restart or an InstallSnapshot: Open (which verifies the
// store's CRC-64 over the whole file) then FSM.Restore. One op is one
// snapshot + persist + restore. Metrics:
//
//	snapshot-ns  FSM.Snapshot on the apply goroutine (must be O(1))
//	persist-s    FSMSnapshot.Persist into the file sink, Close (fsync) included
//	restore-s    FileSnapshotStore.Open + FSM.Restore into a fresh FSM
//	streamB/key  snapshot file bytes per key
//	heapB/key    heap of the loaded store per key (after GC)
//	restoredHeapB/key  heap the restore added per key (after GC): the store,
//	             plus the plugin's instances (a few bytes per key here)
//
// It fails if the restored FSM differs from the source: key count, state
// digest, applied index, plugin, or a query answer.
func BenchmarkSnapshot1M(b *testing.B) {
	fx := loadSnapFixture(b)
	src := fx.fsm

	next := src.applied.Load() + 1
	extra := kvstore.Command{Op: kvstore.OpSet, Key: fx.keys[0], Value: fx.value}.AppendMsgpack(nil)
	set := func() { // one more applied batch: overwrites a key
		snapApply(b, src, []*raft.Log{snapEntry(b, next, Envelope{Kind: KindCommand, Time: int64(next), Plugin: DefaultPluginName, Payload: extra})})
		next++
	}
	var snapTime, persistTime, restoreTime time.Duration
	var fileSize int64
	var restoredHeap float64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		store, err := raft.NewFileSnapshotStoreWithLogger(dir, 1, hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})) // as src.log: warnings only
		if err != nil {
			b.Fatal(err)
		}
		set() // the store's cached view is gone: Snapshot has to clone, as after real traffic
		b.StartTimer()

		// (a) Snapshot on the apply goroutine...
		t0 := time.Now()
		snap, err := src.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		snapTime += time.Since(t0)

		b.StopTimer()
		// The state the snapshot must hold (View returns the view Snapshot
		// took: nothing was applied in between).
		want, wantApplied := src.store.View().Digest(), src.applied.Load()
		set() // applies go on while Raft persists: they must not show in the snapshot
		b.StartTimer()

		// ...then Persist, which Raft runs on its snapshot goroutine.
		t1 := time.Now()
		sink, err := store.Create(raft.SnapshotVersionMax, wantApplied, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := snap.Persist(sink); err != nil {
			b.Fatal(err)
		}
		snap.Release()
		persistTime += time.Since(t1)

		b.StopTimer()
		metas, err := store.List()
		if err != nil || len(metas) != 1 {
			b.Fatalf("snapshot store lists %d snapshots, %v", len(metas), err)
		}
		fileSize = metas[0].Size
		dst, closeDst := newSnapFSM(b, fx.cacheDir)
		heapBefore := snapHeap()
		b.StartTimer()

		// (b) Restore into a fresh FSM, as Raft does on a restart or an
		// InstallSnapshot.
		t2 := time.Now()
		_, rc, err := store.Open(metas[0].ID)
		if err != nil {
			b.Fatal(err)
		}
		if err := dst.Restore(rc); err != nil {
			b.Fatal(err)
		}
		restoreTime += time.Since(t2)

		b.StopTimer()
		restoredHeap = float64(snapHeap()-heapBefore) / snapBenchKeys
		checkRestored(b, fx, dst, want, wantApplied)
		closeDst()
		if err := os.RemoveAll(dir); err != nil { // ~136 MB per iteration
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(snapTime.Nanoseconds())/n, "snapshot-ns")
	b.ReportMetric(persistTime.Seconds()/n, "persist-s")
	b.ReportMetric(restoreTime.Seconds()/n, "restore-s")
	b.ReportMetric(float64(fileSize)/snapBenchKeys, "streamB/key")
	b.ReportMetric(fx.heapPerKey, "heapB/key")
	b.ReportMetric(restoredHeap, "restoredHeapB/key")
}

// checkRestored fails unless dst holds exactly the snapshotted state.
func checkRestored(b *testing.B, fx *snapFixture, dst *FSM, wantDigest [32]byte, wantApplied uint64) {
	b.Helper()
	v := dst.store.View()
	nv, ok := v.Namespace(DefaultPluginName)
	if !ok || nv.Len() != snapBenchKeys {
		b.Fatalf("restored store: namespace %q present %v, want %d keys", DefaultPluginName, ok, snapBenchKeys)
	}
	if got := v.Digest(); got != wantDigest {
		b.Fatalf("restored digest %x, want %x", got, wantDigest)
	}
	if got := dst.applied.Load(); got != wantApplied {
		b.Fatalf("restored applied index %d, want %d", got, wantApplied)
	}
	p := dst.Plugin(DefaultPluginName)
	if p == nil || p.mod.Hash != plugin.HashOf(kvwasm.Module) {
		b.Fatalf("restored FSM lacks the kv plugin: %+v", p)
	}
	key := fx.keys[len(fx.keys)/2]
	res, err := p.pool.Query(context.Background(), nv, kvstore.Query{Op: kvstore.OpGet, Key: key}.AppendMsgpack(nil))
	if err != nil || !res.OK() {
		b.Fatalf("GET on the restored FSM: %v %v", err, res.Err())
	}
	var got kvstore.GetResult
	if err := abi.Unmarshal(res.Data, &got); err != nil || !bytes.Equal(got.Value, fx.value) {
		b.Fatalf("GET on the restored FSM = %q, %v; want %q", got.Value, err, fx.value)
	}
}
