package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/internal/kvmodel"
	"github.com/raftkv/raftkv/internal/wasmbuild"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// config is the suite's configuration, from the environment (make chaos
// sets it from CHAOS_TIME, CHAOS_RUN, CHAOS_SEED, CHAOS_FAULTS).
type config struct {
	total   time.Duration // RAFTKV_CHAOS_TIME: how long to run, over successive seeds
	run     time.Duration // RAFTKV_CHAOS_RUN: the length of one run (one cluster, one seed)
	seed    uint64        // RAFTKV_CHAOS_SEED: the first seed (then seed+1, ...)
	bin     string        // RAFTKV_CHAOS_BIN: the binary (default bin/raftkv: make build)
	faults  []fault       // RAFTKV_CHAOS_FAULTS: the faults to inject (default all)
	store   string        // RAFTKV_CHAOS_LOG_STORE: bolt or wal for every run (default: by seed)
	clients int
}

func loadConfig(t *testing.T) config {
	total := os.Getenv("RAFTKV_CHAOS_TIME")
	if total == "" {
		t.Skip("the fault suite runs with make chaos (RAFTKV_CHAOS_TIME); .ci/run runs a bounded one")
	}
	cfg := config{run: 2 * time.Minute, clients: 6, bin: "../../bin/raftkv", faults: faults}
	var err error
	if cfg.total, err = time.ParseDuration(total); err != nil {
		t.Fatalf("RAFTKV_CHAOS_TIME: %v", err)
	}
	if s := os.Getenv("RAFTKV_CHAOS_RUN"); s != "" {
		if cfg.run, err = time.ParseDuration(s); err != nil {
			t.Fatalf("RAFTKV_CHAOS_RUN: %v", err)
		}
	}
	cfg.seed = uint64(time.Now().UnixNano() % 1_000_000)
	if s := os.Getenv("RAFTKV_CHAOS_SEED"); s != "" {
		if cfg.seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("RAFTKV_CHAOS_SEED: %v", err)
		}
	}
	if s := os.Getenv("RAFTKV_CHAOS_BIN"); s != "" {
		cfg.bin = s
	}
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.bin); err != nil {
		t.Fatalf("the raftkv binary (run make build): %v", err)
	}
	switch cfg.store = os.Getenv("RAFTKV_CHAOS_LOG_STORE"); cfg.store {
	case "", "bolt", "wal":
	default:
		t.Fatalf("RAFTKV_CHAOS_LOG_STORE: %q is not bolt or wal", cfg.store)
	}
	if s := os.Getenv("RAFTKV_CHAOS_FAULTS"); s != "" {
		cfg.faults = nil
		for _, name := range strings.Split(s, ",") {
			i := slices.IndexFunc(faults, func(f fault) bool { return f.name == name })
			if i < 0 {
				t.Fatalf("RAFTKV_CHAOS_FAULTS: unknown fault %q", name)
			}
			cfg.faults = append(cfg.faults, faults[i])
		}
	}
	return cfg
}

// pluginSet is the modules the plugin faults deploy: two builds of the KV
// plugin (the embedded one and a stripped build of the same source) and two
// versions of host/testdata/versioned.
type pluginSet struct {
	kv  [2][]byte
	ver map[string][]byte
}

func buildPlugins(t *testing.T) *pluginSet {
	ps := &pluginSet{ver: map[string][]byte{}}
	ps.kv[0] = kvwasm.Module
	ps.kv[1] = wasmbuild.Build(t, "../../plugins/kv", "-s -w")
	if bytes.Equal(ps.kv[0], ps.kv[1]) {
		t.Fatal("the stripped build of the KV plugin is the embedded one: no upgrade to test")
	}
	for _, v := range []string{"1", "2"} {
		ps.ver[v] = wasmbuild.Build(t, "../../host/testdata/versioned", "-X main.version="+v)
	}
	return ps
}

// TestChaos runs the fault suite: successive runs of RAFTKV_CHAOS_RUN each,
// one seed each, until RAFTKV_CHAOS_TIME is spent. A seed fixes the
// cluster (3 voters for an odd seed, 5 for an even one; raft-wal as the log
// store for a multiple of 4, else BoltDB, unless RAFTKV_CHAOS_LOG_STORE
// says) and the sequence of faults.
func TestChaos(t *testing.T) {
	cfg := loadConfig(t)
	plugins := buildPlugins(t)
	start := time.Now()
	var failures []string
	defer func() {
		// Repeated last, so that the end of a long log (all CI keeps)
		// says why a seed failed.
		for _, f := range failures {
			t.Log(f)
		}
	}()
	for seed := cfg.seed; ; seed++ {
		left := cfg.total - time.Since(start)
		if left < 20*time.Second && seed != cfg.seed {
			return
		}
		d := min(cfg.run, max(left, 20*time.Second))
		var failure string
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runSeed(t, cfg, plugins, seed, d, &failure) })
		if failure != "" {
			if len(failure) > 3000 {
				failure = failure[:3000] + " …"
			}
			failures = append(failures, fmt.Sprintf("seed %d failed: %s", seed, failure))
		}
	}
}

// runSummary is one run's outcome, printed as one JSON line (CHAOS-SUMMARY)
// that scripts add up across runs.
type runSummary struct {
	Seed         uint64            `json:"seed"`
	Nodes        int               `json:"nodes"`
	LogStore     string            `json:"log_store"`
	Duration     string            `json:"duration"`
	Rounds       map[string]int    `json:"rounds"`
	Effects      map[string]int    `json:"effects"`
	Ops          map[string]int    `json:"ops"`
	Samples      map[string]string `json:"samples,omitempty"`
	History      int               `json:"history"`
	Linearizable string            `json:"linearizable"`
	AckedUnique  int               `json:"acked_unique_writes"`
	Lost         int               `json:"lost_writes"`
	NotBack      []string          `json:"nodes_not_back,omitempty"`
	Digests      string            `json:"digests"`
	Failure      string            `json:"failure,omitempty"`
}

// runSeed runs one seed and sets *failure to its first failure.
func runSeed(t *testing.T, cfg config, plugins *pluginSet, seed uint64, d time.Duration, failure *string) {
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73))
	opts := options{bin: cfg.bin, nodes: 3, logStore: "bolt", diskSize: "96m"}
	if seed%2 == 0 {
		opts.nodes = 5
	}
	if seed%4 == 0 {
		opts.logStore = "wal"
	}
	if cfg.store != "" {
		opts.logStore = cfg.store
	}
	if opts.logStore == "wal" {
		// raft-wal preallocates 64 MiB segments: room for three, so that
		// the node can rotate one when its disk is not full.
		opts.diskSize = "256m"
	}
	d = d.Round(time.Second)
	sum := runSummary{Seed: seed, Nodes: opts.nodes, LogStore: opts.logStore, Rounds: map[string]int{}, Duration: d.String()}
	t.Logf("chaos: seed %d, %d nodes, log store %s, %v (replay: make chaos CHAOS_SEED=%d CHAOS_TIME=%v CHAOS_RUN=%v, and the same CHAOS_FAULTS and CHAOS_LOG_STORE)",
		seed, opts.nodes, opts.logStore, d, seed, d, d)
	defer func() {
		if t.Failed() && sum.Failure == "" {
			sum.Failure = "see the test log"
		}
		line, _ := json.Marshal(sum)
		t.Logf("CHAOS-SUMMARY %s", line)
		*failure = sum.Failure
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if sum.Failure == "" {
			sum.Failure = msg
		}
		t.Error(msg)
	}

	c, err := startCluster(t, opts)
	if err != nil {
		fail("starting the cluster: %v", err)
		return
	}
	w := newWorkload(c)
	ctx, stopClients := context.WithCancel(context.Background())
	clients := w.run(ctx, cfg.clients, seed)
	nm := &nemesis{c: c, rng: rng, plugins: plugins, effects: map[string]int{}, logf: func(format string, args ...any) {
		t.Logf("%6.1fs %s", time.Since(w.start).Seconds(), fmt.Sprintf(format, args...))
	}}

	// Faults, one after another, until the run's time is up.
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		gap := time.Duration(1000+rng.IntN(2000)) * time.Millisecond
		time.Sleep(gap)
		f := nm.pick(cfg.faults)
		sum.Rounds[f.name]++
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err := f.run(fctx, nm)
		cancel()
		if err != nil {
			fail("fault %s (round %d): the cluster did not come back: %v", f.name, countRounds(sum.Rounds), err)
			sum.NotBack = append(sum.NotBack, notReady(c)...)
			break
		}
	}
	stopClients()
	clients.Wait()
	sum.Effects = nm.effects

	// Heal whatever is left and bring every member back.
	c.fw.heal()
	for _, n := range c.members() {
		if n.isPaused() {
			n.signal(syscall.SIGCONT)
		}
	}
	if err := c.restartDown(); err != nil {
		fail("restarting: %v", err)
	}
	if err := c.waitReady(readyTimeout, c.members()...); err != nil {
		fail("after the faults: %v", err)
		sum.NotBack = append(sum.NotBack, notReady(c)...)
	}

	// The history, ended by linearizable reads of every register.
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	w.finalReads(fctx)
	cancel()
	w.mu.Lock()
	sum.Ops = w.counts
	sum.Samples = w.samples
	sum.AckedUnique = len(w.acked)
	unexpected := slices.Clone(w.unexpectd)
	w.mu.Unlock()
	if len(unexpected) > 0 {
		fail("%d answers the API does not document, first: %s", len(unexpected), unexpected[0])
	}

	// Every member has the same state.
	digests, err := c.converged(2 * time.Minute)
	if err != nil {
		fail("%v", err)
	}
	sum.Digests = digests

	// No acknowledged write is lost: every unique key on every member.
	for _, n := range c.members() {
		lost := lostWrites(t, n, w)
		if len(lost) > 0 {
			sum.Lost = max(sum.Lost, len(lost))
			fail("%s lost %d acknowledged writes, e.g. %s", n.id, len(lost), lost[0])
		}
	}
	if err != nil {
		// A member behind the others and ready (a follower that hears only
		// heartbeats thinks it is caught up): where did its replication
		// stop?
		dumpGoroutines(c)
	}

	// Linearizability of the history.
	history := w.prunedHistory()
	sum.History = len(history)
	res, info := porcupine.CheckOperationsVerbose(kvmodel.HistoryModel, history, 5*time.Minute)
	sum.Linearizable = string(res)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(keptDir(t), fmt.Sprintf("chaos-seed-%d-history.html", seed))
		if err := porcupine.VisualizePath(kvmodel.HistoryModel, info, path); err != nil {
			t.Logf("visualization: %v", err)
		}
		fail("the history is not linearizable (%d operations; visualization: %s)", len(history), path)
	default:
		fail("linearizability check inconclusive (%s) for %d operations", res, len(history))
	}

	// Every node restarts from what it wrote, and the state is the same.
	t.Logf("kill -9 every node and restart")
	for _, n := range c.members() {
		n.kill()
	}
	if err := c.restartDown(); err != nil {
		fail("restarting: %v", err)
	}
	if err := c.waitReady(readyTimeout, c.members()...); err != nil {
		fail("after the final restart: %v", err)
		sum.NotBack = append(sum.NotBack, notReady(c)...)
	} else if after, err := c.converged(2 * time.Minute); err != nil {
		fail("after the final restart: %v", err)
	} else if pluginsPart(after) != pluginsPart(digests) {
		fail("the state changed across a restart:\n  before: %s\n  after:  %s", digests, after)
	}
	// No node logged a panic (one recovered by the RPC server is a bug too).
	if panics := c.panics(); len(panics) > 0 {
		fail("%d panics in the nodes' logs, the first:\n%s", len(panics), panics[0])
	}
	t.Logf("chaos: seed %d: %d fault rounds %v; %d operations recorded, linearizable: %s; %d acknowledged unique writes, %d lost",
		seed, countRounds(sum.Rounds), sum.Rounds, len(history), res, sum.AckedUnique, sum.Lost)
}

func countRounds(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// pluginsPart is a digests line without the applied index (a restart adds
// the new leader's entries).
func pluginsPart(digests string) string {
	_, after, _ := strings.Cut(digests, ":")
	return after
}

// notReady lists the members that are not ready, for the summary. If any
// is not, every running member prints its goroutines into its log (SIGQUIT;
// a stuck follower may be waiting on its leader, or the leader's replication
// to it may be stuck) and is started again, for the diagnosis.
func notReady(c *cluster) []string {
	var out []string
	for _, n := range c.members() {
		if err := n.ready(); err != nil {
			out = append(out, n.id+": "+err.Error())
		}
	}
	if len(out) == 0 {
		return nil
	}
	dumpGoroutines(c)
	return out
}

// dumpGoroutines makes every running member print its goroutines into its
// log (SIGQUIT) and starts it again.
func dumpGoroutines(c *cluster) {
	var dumped []*node
	for _, n := range c.members() {
		if n.running() && n.signal(syscall.SIGQUIT) == nil {
			dumped = append(dumped, n)
		}
	}
	time.Sleep(2 * time.Second)
	for _, n := range dumped {
		n.kill()
		n.start()
	}
}

// keptDir is a directory that outlives the test, for what a failure leaves.
func keptDir(t *testing.T) string {
	d := filepath.Join(os.TempDir(), "raftkv-chaos-failures")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// lostWrites lists the acknowledged unique keys that node n does not have
// (with their value), read from its own state.
func lostWrites(t *testing.T, n *node, w *workload) []string {
	have := map[string]string{}
	start := uniquePrefix
	for {
		var page struct {
			Items []struct{ Key, Value string }
			Next  string
		}
		// Keys from "u/" up to "u0", the next prefix, in pages of 1,000: a
		// page is one query of the kv plugin, and a build of kv deployed by
		// a plugin-upgrade-kv round is metered, with the default 20M query
		// fuel, some 3,300 a key here (a page of 10,000 ran out of fuel at
		// 6,096 keys: seed 1 on a faster machine).
		q := "/v1/kv?consistency=stale&limit=1000&start=" + url.QueryEscape(start) + "&end=u0"
		if err := n.get(q, &page); err != nil {
			t.Errorf("listing the written keys on %s: %v", n.id, err)
			return nil
		}
		for _, it := range page.Items {
			have[it.Key] = it.Value
		}
		if page.Next == "" {
			break
		}
		start = page.Next
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lost []string
	for k, v := range w.acked {
		if have[k] != v {
			lost = append(lost, fmt.Sprintf("%s=%s (has %q)", k, v, have[k]))
		}
	}
	sort.Strings(lost)
	return lost
}
