package host_test

// BenchmarkForward lives here, not in bench_test.go (package host), because it
// uses internal/cluster, which imports host. Run it with:
//
//	go test -run '^$' -bench 'Forward' -benchmem ./host/

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

// forwardBenchKeys is how many keys the query benchmarks read (set first).
const forwardBenchKeys = 1024

// BenchmarkForward measures Node.Apply of a KV SET (16-byte key, 100-byte
// value) and Node.Query of a GET at Leader consistency on an in-process
// 3-node cluster (real SSH on 127.0.x.y, real wasm, the default BoltDB log
// store on disk), called on the leader and on a follower (which forwards to
// the leader over its SSH RPC channel), by 1 and by 64 concurrent callers. Each call has a 10 s
// deadline, as an HTTP request's context would. Metrics: ops/s, the latency
// of one call (mean, p50, p99) in µs, the CPU time of the whole process per
// call (cpu-us/op), the mean number of log entries per batch the leader's
// FSM applied (Apply runs; Query runs apply nothing), and, on a follower,
// the mean number of writes per forwarded request (writes/fwd).
//
// It fails on any error or non-OK result, and if leadership moves during a
// sub-benchmark (its "leader" and "follower" figures would be mixed up).
// Each "via=leader" run comes before its "via=follower" run, or after it
// with RAFTKV_BENCH_FOLLOWER_FIRST set: alternate the two to compare them
// without the bias of the order (the first run of a fresh cluster grows
// its log files and heap).
func BenchmarkForward(b *testing.B) {
	c := cluster.Start(b, cluster.Options{Nodes: 3})
	leader := c.Leader()
	nodes := map[string]*cluster.Member{"leader": leader, "follower": c.Followers()[0]}

	value := make([]byte, 100)
	for i := range value {
		value[i] = 'v'
	}
	queryKeys := make([][]byte, forwardBenchKeys)
	for i := range queryKeys {
		queryKeys[i] = benchKey('q', 0, uint64(i))
		callOK(b, func(ctx context.Context) (abi.Result, error) {
			return leader.Node.Apply(ctx, "kv", kvstore.Command{Op: kvstore.OpSet, Key: queryKeys[i], Value: value}.AppendMsgpack(nil))
		})
	}
	c.WaitConverged(3)

	var run uint64 // distinct keys for every sub-benchmark run
	order := []string{"leader", "follower"}
	if os.Getenv("RAFTKV_BENCH_FOLLOWER_FIRST") != "" {
		order = []string{"follower", "leader"}
	}
	for _, op := range []string{"Apply", "Query"} {
		for _, conc := range []int{1, 64} {
			for _, via := range order {
				n := nodes[via].Node
				b.Run(fmt.Sprintf("%s/c=%d/via=%s", op, conc, via), func(b *testing.B) {
					run++
					r := run
					var call func(ctx context.Context, i uint64) (abi.Result, error)
					if op == "Apply" {
						call = func(ctx context.Context, i uint64) (abi.Result, error) {
							cmd := kvstore.Command{Op: kvstore.OpSet, Key: benchKey('a', r, i), Value: value}.AppendMsgpack(nil)
							return n.Apply(ctx, "kv", cmd)
						}
					} else {
						call = func(ctx context.Context, i uint64) (abi.Result, error) {
							q := kvstore.Query{Op: kvstore.OpGet, Key: queryKeys[i%forwardBenchKeys]}.AppendMsgpack(nil)
							return n.Query(ctx, "kv", q, host.Leader)
						}
					}
					sum0, count0 := histStats(b, leader.Node, "raftkv_fsm_batch_entries")
					fsum0, fcount0 := histStats(b, n, "raftkv_forward_batch_writes")
					runConcurrent(b, conc, call)
					if sum, count := histStats(b, leader.Node, "raftkv_fsm_batch_entries"); count > count0 {
						b.ReportMetric((sum-sum0)/float64(count-count0), "entries/batch")
					}
					if sum, count := histStats(b, n, "raftkv_forward_batch_writes"); count > fcount0 {
						b.ReportMetric((sum-fsum0)/float64(count-fcount0), "writes/fwd")
					}
					if !leader.Node.IsLeader() {
						b.Fatalf("leadership moved from %s during the run: the figures mix paths", leader.ID)
					}
				})
			}
		}
	}
}

// histStats returns the sum and count of node n's histogram name: the
// leader's raftkv_fsm_batch_entries (the mean number of log entries Raft
// handed its FSM per batch over a run explains much of a write's cost), or
// a follower's raftkv_forward_batch_writes (writes per forwarded request).
func histStats(b *testing.B, n *host.Node, name string) (sum float64, count uint64) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(n.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleSum(), h.GetSampleCount()
		}
	}
	b.Fatalf("no %s metric", name)
	return 0, 0
}

// benchKey returns a distinct 16-byte key: a tag byte, the run and the index.
func benchKey(tag byte, run, i uint64) []byte {
	k := make([]byte, 16)
	k[0] = tag
	binary.BigEndian.PutUint32(k[4:], uint32(run))
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

func callOK(b *testing.B, call func(ctx context.Context) (abi.Result, error)) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := call(ctx)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		b.Fatal(err)
	}
}

// cpuTime returns the CPU time (user + system) the process has used: the
// three nodes and the callers run in it, so per call it is the whole cost
// of a call, which on a busy machine (where the process gets a share of the
// cores) bounds the throughput more than any wait does.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runConcurrent makes b.N calls from conc goroutines and reports throughput
// and per-call latency.
func runConcurrent(b *testing.B, conc int, call func(ctx context.Context, i uint64) (abi.Result, error)) {
	b.ReportAllocs()
	var next atomic.Uint64
	var firstErr atomic.Pointer[error]
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime(b)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, b.N/conc+1)
			for {
				i := next.Add(1) - 1
				if i >= uint64(b.N) || firstErr.Load() != nil {
					break
				}
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := call(ctx, i)
				cancel()
				mine = append(mine, time.Since(t0))
				if err == nil {
					err = res.Err()
				}
				if err != nil {
					err = fmt.Errorf("call %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
			lats[w] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	if p := firstErr.Load(); p != nil {
		b.Fatal(*p)
	}
	all := slices.Sorted(slices.Values(slices.Concat(lats...)))
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(us(cpu)/float64(b.N), "cpu-us/op")
	b.ReportMetric(us(sum)/float64(len(all)), "lat-us")
	b.ReportMetric(us(all[len(all)/2]), "p50-us")
	b.ReportMetric(us(all[len(all)*99/100]), "p99-us")
}
