// Command scale measures a raftkv node holding many keys (the "ten million
// keys" benchmark of issue 15): it loads --keys keys of 16 random bytes (as
// letters) with 100-byte values into a fresh node of bin/raftkv through the
// real write path (POST /v1/txn, --batch SETs per transaction: HTTP, Raft's
// log with its fsync, the FSM, the kv WebAssembly plugin, host/state), then
// reports:
//
//   - heap and RSS of the loaded node after a forced GC (heap from the node's
//     own /metrics: go_memstats_heap_alloc_bytes, after GET
//     /debug/pprof/heap?gc=1), per key and against the raw key+value bytes;
//   - snapshot persist: GET /v1/backup makes Raft take a user snapshot; the
//     time is from the node's own log, "starting snapshot up to" to
//     "snapshot complete up to" (FSM.Snapshot, writing the file with its
//     fsync, log compaction);
//   - restart to ready: SIGTERM, start again on the same data directory,
//     until /readyz answers 200 and /v1/status counts every key; of which
//     the snapshot restore, from the process start to the node's "restored
//     snapshot" log line; heap and RSS after the restore;
//   - a follower from scratch: a new node joins the loaded one, whose log
//     was compacted to --trailing-logs 16, so Raft sends it the snapshot
//     (InstallSnapshot); the time from its start until it has applied the
//     leader's last index with every key, and its heap and RSS.
//
// The kv plugin's quotas are raised first (raftkv plugin limits) to twice
// the keys and bytes loaded: the defaults stop a namespace at 10M keys and
// 1 GiB of keys and values.
//
// One node takes the load (writes commit on a single voter) so that the
// machine holds the keys once during the load instead of three times; the
// write path is otherwise the cluster's. The nodes listen on 127.0.8.21 and
// 127.0.8.22.
//
//	go run ./bench/scale --keys 1000000       # a quick run
//	make bench-scale BENCH_SCALE_KEYS=10000000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	keyLen = 16
	valLen = 100
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type options struct {
	bin     string
	keys    int64
	batch   int
	senders int
	dir     string
	keep    bool
}

func run(args []string) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	o := options{}
	defKeys := int64(10_000_000)
	if v, err := strconv.ParseInt(os.Getenv("BENCH_SCALE_KEYS"), 10, 64); err == nil && v > 0 {
		defKeys = v
	}
	fs.StringVar(&o.bin, "raftkv-bin", "bin/raftkv", "the raftkv binary")
	fs.Int64Var(&o.keys, "keys", defKeys, "keys to load (env BENCH_SCALE_KEYS)")
	fs.IntVar(&o.batch, "batch", 1000, "SETs per transaction")
	fs.IntVar(&o.senders, "senders", 16, "transactions in flight")
	fs.StringVar(&o.dir, "dir", "", "data and logs (default: a new temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the data and logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.keys < 1 || o.batch < 1 || o.senders < 1 {
		return errors.New("--keys, --batch and --senders must be positive")
	}
	var err error
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "raftkv-scale."); err != nil {
			return err
		}
	}
	ok := false
	defer func() {
		if ok && !o.keep {
			os.RemoveAll(o.dir)
		} else {
			logf("data and logs kept in %s", o.dir)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	n1 := &node{name: "s1", ip: "127.0.8.21", bin: o.bin, dir: o.dir}
	n2 := &node{name: "s2", ip: "127.0.8.22", bin: o.bin, dir: o.dir}
	defer n1.stop()
	defer n2.stop()

	loadBefore := loadavg()
	if err := n1.start("--bootstrap"); err != nil {
		return err
	}
	if err := n1.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	emptyHeap, _, err := n1.memory(ctx, "empty")
	if err != nil {
		return err
	}
	// The kv plugin's default quotas (10M keys, 1 GiB of keys and values per
	// namespace) would refuse the last of 10M 116-byte records: raise them
	// through the log, as an operator would.
	quotaKeys := max(2*o.keys, 10_000_000)
	quotaBytes := max(2*o.keys*(keyLen+valLen), 1<<30)
	if out, err := exec.CommandContext(ctx, o.bin, "plugin", "limits", "kv", "--addr", n1.http(),
		"--max-keys", strconv.FormatInt(quotaKeys, 10), "--max-state-bytes", strconv.FormatInt(quotaBytes, 10)).CombinedOutput(); err != nil {
		return fmt.Errorf("raftkv plugin limits: %v: %s", err, out)
	}

	logf("loading %d keys in transactions of %d SETs, %d in flight", o.keys, o.batch, o.senders)
	t0 := time.Now()
	if err := load(ctx, n1.http(), o); err != nil {
		return err
	}
	loadTime := time.Since(t0)
	st, err := n1.status(ctx)
	if err != nil {
		return err
	}
	if int64(st.Keys) != o.keys {
		return fmt.Errorf("s1 counts %d keys after loading %d", st.Keys, o.keys)
	}
	heap, rss, err := n1.memory(ctx, "loaded")
	if err != nil {
		return err
	}

	logf("snapshot (GET /v1/backup)")
	t0 = time.Now()
	backupBytes, err := n1.backup(ctx)
	if err != nil {
		return err
	}
	backupTime := time.Since(t0)
	persist, err := n1.logSpan("starting snapshot up to", "snapshot complete up to")
	if err != nil {
		return err
	}

	logf("restarting s1")
	n1.stop()
	t0 = time.Now()
	if err := n1.start(); err != nil {
		return err
	}
	if err := n1.waitReady(ctx, 10*time.Minute); err != nil {
		return err
	}
	if err := n1.waitKeys(ctx, o.keys, 0, 10*time.Minute); err != nil {
		return err
	}
	restart := time.Since(t0)
	restored, err := n1.logSince(t0, "restored snapshot")
	if err != nil {
		return err
	}
	heapR, rssR, err := n1.memory(ctx, "restarted")
	if err != nil {
		return err
	}

	logf("a new follower joins and catches up by snapshot")
	st, err = n1.status(ctx)
	if err != nil {
		return err
	}
	t0 = time.Now()
	if err := n2.start("--join", n1.ip+":21082"); err != nil {
		return err
	}
	if err := n2.waitKeys(ctx, o.keys, st.LastIndex, 10*time.Minute); err != nil {
		return err
	}
	catchUp := time.Since(t0)
	installed, err := n2.logSince(t0, "restored snapshot")
	if err != nil {
		return fmt.Errorf("s2 did not restore a snapshot (did it replay the log instead?): %w", err)
	}
	heapF, rssF, err := n2.memory(ctx, "follower")
	if err != nil {
		return err
	}
	loadAfter := loadavg()

	raw := float64(o.keys * (keyLen + valLen))
	perKey := func(b uint64) string {
		net := float64(b) - float64(emptyHeap)
		return fmt.Sprintf("%.0f B/key, %.2f× raw (less the empty node's heap: %.0f B/key, %.2f×)",
			float64(b)/float64(o.keys), float64(b)/raw, net/float64(o.keys), net/raw)
	}
	mib := func(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
	fmt.Printf("\n%d keys (16 B keys, 100 B values: %.0f MiB raw), one node loaded through POST /v1/txn (%d SETs each); load average before %s, after %s\n\n",
		o.keys, raw/(1<<20), o.batch, loadBefore, loadAfter)
	fmt.Println("| measure | value | target |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| load | %.1f s (%.0f keys/s) | |\n", loadTime.Seconds(), float64(o.keys)/loadTime.Seconds())
	fmt.Printf("| heap, loaded node (empty node: %s) | %s, %s | ≤ 1.3× raw |\n", mib(emptyHeap), mib(heap), perKey(heap))
	fmt.Printf("| RSS, loaded node | %s, %s | |\n", mib(rss), perKey(rss))
	fmt.Printf("| snapshot persist (node log) | %.1f s (%s, backup stream %.1f s) | ≤ 10 s |\n", persist.Seconds(), mib(uint64(backupBytes)), backupTime.Seconds())
	fmt.Printf("| restart to ready, every key | %.1f s | ≤ 15 s |\n", restart.Seconds())
	fmt.Printf("| of which process start to snapshot restored | %.1f s | ≤ 10 s |\n", restored.Seconds())
	fmt.Printf("| heap after restart | %s, %s | ≤ 1.3× raw |\n", mib(heapR), perKey(heapR))
	fmt.Printf("| RSS after restart | %s, %s | |\n", mib(rssR), perKey(rssR))
	fmt.Printf("| new follower: start to every key applied | %.1f s (snapshot restored %.1f s after start) | |\n", catchUp.Seconds(), installed.Seconds())
	fmt.Printf("| follower heap / RSS | %s, %s / %s | |\n", mib(heapF), perKey(heapF), mib(rssF))
	ok = true
	return nil
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "scale: "+format+"\n", a...) }

// load sends o.keys SETs in transactions of o.batch, o.senders at a time.
func load(ctx context.Context, addr string, o options) error {
	batches := (o.keys + int64(o.batch) - 1) / int64(o.batch)
	var next, done atomic.Int64
	errc := make(chan error, o.senders)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Minute}
	for s := 0; s < o.senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s), uint64(time.Now().UnixNano())))
			var body bytes.Buffer
			k := make([]byte, keyLen)
			v := make([]byte, valLen)
			for {
				b := next.Add(1) - 1
				if b >= batches || ctx.Err() != nil {
					return
				}
				n := min(int64(o.batch), o.keys-b*int64(o.batch))
				body.Reset()
				body.WriteString(`{"ops":[`)
				for i := int64(0); i < n; i++ {
					randLetters(rng, k)
					randLetters(rng, v)
					if i > 0 {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"op":"SET","key":"%s","value":"%s"}`, k, v)
				}
				body.WriteString(`]}`)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, addr+"/v1/txn", bytes.NewReader(body.Bytes()))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errc <- fmt.Errorf("txn %d: %w", b, err)
					return
				}
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errc <- fmt.Errorf("txn %d: %s: %s", b, resp.Status, msg)
					return
				}
				if d := done.Add(1); d%100 == 0 {
					logf("%d/%d transactions", d, batches)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// randLetters fills b with random letters (52 of them: 16 give ~91 bits, so
// ten million keys do not collide in practice; the key count is checked).
func randLetters(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); {
		x := rng.Uint64()
		for j := 0; j < 10 && i < len(b); j++ {
			b[i] = letters[x%52]
			x /= 52
			i++
		}
	}
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

// node is one `raftkv serve` process.
type node struct {
	name, ip, bin, dir string
	cmd                *exec.Cmd
	started            time.Time
}

func (n *node) http() string    { return "http://" + n.ip + ":21080" }
func (n *node) logPath() string { return filepath.Join(n.dir, n.name+".log") }

func (n *node) start(extra ...string) error {
	args := append([]string{"serve", "--node-id", n.name, "--data-dir", filepath.Join(n.dir, n.name),
		"--http-addr", n.ip + ":21080", "--raft-addr", n.ip + ":21081", "--mgmt-addr", n.ip + ":21082",
		"--pprof-addr", n.ip + ":21083", "--log-format", "json",
		"--plugin-cache-dir", filepath.Join(n.dir, "wasm-cache"),
		// Raft snapshots only when asked (GET /v1/backup), then keeps 16
		// entries: a new follower must be sent the snapshot.
		"--snapshot-threshold", "1000000000", "--trailing-logs", "16",
		"--max-body-bytes", strconv.Itoa(8 << 20), "--request-timeout", "5m", "--apply-timeout", "5m"}, extra...)
	f, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	n.cmd = exec.Command(n.bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	n.started = time.Now()
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	logf("started %s (pid %d) on %s, log %s", n.name, n.cmd.Process.Pid, n.http(), n.logPath())
	return nil
}

// stop sends SIGTERM and waits (SIGKILL after 60 s).
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
	n.cmd = nil
}

func (n *node) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

func (n *node) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := n.get(ctx, n.http()+"/readyz"); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (log %s)", n.name, limit, n.logPath())
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

type status struct {
	LastIndex    uint64 `json:"last_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Keys         int    `json:"keys"`
}

func (n *node) status(ctx context.Context) (status, error) {
	var st status
	b, err := n.get(ctx, n.http()+"/v1/status")
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	return st, err
}

// waitKeys waits until the node counts keys keys and has applied index.
func (n *node) waitKeys(ctx context.Context, keys int64, index uint64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := n.status(ctx)
		if err == nil && int64(st.Keys) == keys && st.AppliedIndex >= index {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %d keys at index %d after %s: %+v, %v", n.name, keys, index, limit, st, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// memory forces a GC in the node (heap profile with gc=1), then reads its
// heap in use by live objects and RSS from /metrics. The profile is kept as
// <dir>/<node>-<label>.heap.pprof, for `go tool pprof` (with --keep).
func (n *node) memory(ctx context.Context, label string) (heap, rss uint64, err error) {
	prof, err := n.get(ctx, "http://"+n.ip+":21083/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(filepath.Join(n.dir, n.name+"-"+label+".heap.pprof"), prof, 0o600); err != nil {
		return 0, 0, err
	}
	b, err := n.get(ctx, n.http()+"/metrics")
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_alloc_bytes":
			heap = uint64(v)
		case "process_resident_memory_bytes":
			rss = uint64(v)
		}
	}
	if heap == 0 || rss == 0 {
		return 0, 0, fmt.Errorf("%s: /metrics has no go_memstats_heap_alloc_bytes or process_resident_memory_bytes", n.name)
	}
	return heap, rss, nil
}

// backup streams GET /v1/backup to nowhere and returns its size.
func (n *node) backup(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.http()+"/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("backup: %s: %s", resp.Status, b)
	}
	return io.Copy(io.Discard, resp.Body)
}

type logLine struct {
	Time time.Time `json:"time"`
	Msg  string    `json:"msg"`
}

func (n *node) logLines() ([]logLine, error) {
	b, err := os.ReadFile(n.logPath())
	if err != nil {
		return nil, err
	}
	var out []logLine
	for _, l := range bytes.Split(b, []byte("\n")) {
		var ll logLine
		if json.Unmarshal(l, &ll) == nil && ll.Msg != "" {
			out = append(out, ll)
		}
	}
	return out, nil
}

// logSpan is the time from the last line with message from to the first
// line with message to after it.
func (n *node) logSpan(from, to string) (time.Duration, error) {
	lines, err := n.logLines()
	if err != nil {
		return 0, err
	}
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l.Msg, from) {
			start = i
		}
	}
	if start < 0 {
		return 0, fmt.Errorf("%s: no %q in the log", n.name, from)
	}
	for _, l := range lines[start:] {
		if strings.HasPrefix(l.Msg, to) {
			return l.Time.Sub(lines[start].Time), nil
		}
	}
	return 0, fmt.Errorf("%s: no %q after %q in the log", n.name, to, from)
}

// logSince is the time from t to the first line with message msg after t.
func (n *node) logSince(t time.Time, msg string) (time.Duration, error) {
	lines, err := n.logLines()
	if err != nil {
		return 0, err
	}
	for _, l := range lines {
		if !l.Time.Before(t.Truncate(time.Millisecond)) && strings.HasPrefix(l.Msg, msg) {
			return l.Time.Sub(t), nil
		}
	}
	return 0, fmt.Errorf("%s: no %q in the log after %s", n.name, msg, t.Format(time.RFC3339Nano))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
