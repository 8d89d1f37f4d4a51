package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const benchSummary = `Load the cluster and report throughput and latency.

Operations (--op):
  put     PUT /v1/kv/{key}: every write a new key, or random keys of --keys
  get     GET /v1/kv/{key}?consistency=C over the --preload keys (or --keys)
  cas     PUT ?cas=N: create new keys (cas=0), or with --keys update random keys
          at their last version (each client owns a share of the keys)
  mixed   gets and puts in the --mix ratio READS:WRITES (e.g. 90:10)

An operation counts as done only when the server confirmed it with a 2xx answer;
a 404 on a key written by --preload is an error, on any other key a miss (counted
as done and reported). Everything else (non-2xx, network errors, timeouts) is an
error. Latency is client-side, from sending the request to the end of the answer.

Keys are a random 4-letter prefix, new for each run, and a zero-padded number
(no prefix when --key-size is under 12); values are --value-size random letters.

--target leader (the default) sends every request to the leader: bench asks each
--addr for GET /v1/cluster and matches the leader's ID with the node_id each one
reports, so list every node's HTTP address (--addr a:8080,b:8081,c:8082).
--target follower sends every request to one follower, the first --addr that is
not the leader: writes are forwarded to the leader (compare with --target leader
in the same run; the issue's "forwarded writes" ratio).
--target any spreads the clients over every --addr.

Exits 1 when any operation failed (after printing the summary).`

// benchMaxSamples bounds the latencies kept for the percentiles (8 bytes
// each); operations beyond it are still counted.
const benchMaxSamples = 10_000_000

// benchOptions is the parsed command line.
type benchOptions struct {
	addrs             []string
	token, caCert     string
	timeout           time.Duration
	json, markdown    bool
	label             string
	op                string
	consistency       string
	mixReads, mixW    int
	clients, conns    int
	keySize, valSize  int
	keys              int64
	count             int64
	duration          time.Duration
	target            string
	preload           int64
	preloadClients    int
	progress, quiet   bool
	countSet, durSet  bool
	consistencyInName string
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[flags]", benchSummary, stdout)
	cf := addClientFlags(fs)
	fs.Lookup("addr").Usage = "HTTP address of a node, or a comma-separated list of every node's (needed to find the leader's)"
	o := &benchOptions{}
	fs.StringVar(&o.op, "op", "put", "operation: put, get, cas or mixed")
	fs.StringVar(&o.consistency, "consistency", "", "read consistency of get and mixed: stale, leader or linearizable (default: the node's, leader)")
	mix := fs.String("mix", "90:10", "READS:WRITES ratio of --op mixed")
	fs.IntVar(&o.clients, "clients", 1, "concurrent clients, each with one request in flight")
	fs.IntVar(&o.conns, "conns", 0, "HTTP keep-alive connections per node (default: --clients)")
	fs.IntVar(&o.keySize, "key-size", 16, "key size in bytes")
	fs.IntVar(&o.valSize, "value-size", 100, "value size in bytes")
	fs.Int64Var(&o.keys, "keys", 0, "key space: operations pick random keys among this many (default 0: every write a new key; reads the --preload keys)")
	fs.Int64Var(&o.count, "count", 10000, "operations to run (with --duration: at most)")
	fs.DurationVar(&o.duration, "duration", 0, "run for this long instead of --count operations")
	fs.StringVar(&o.target, "target", "leader", "where requests go: leader, follower (the first --addr that is not the leader), or any (spread over every --addr)")
	fs.Int64Var(&o.preload, "preload", 0, "write this many keys before the benchmark (not measured), for get, mixed and cas to read or update")
	fs.IntVar(&o.preloadClients, "preload-clients", 0, "concurrent clients of --preload (default: --clients, at least 16)")
	fs.BoolVar(&o.progress, "progress", false, "show progress on standard error even when it is not a terminal")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress, even on a terminal")
	fs.BoolVar(&o.markdown, "markdown", false, "print the result as one markdown table row: | op | clients | ops/s | p50 | p99 | p99.9 | max | errors |")
	fs.StringVar(&o.label, "label", "", "the op column of --markdown (default: derived from --op and --consistency)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, 0); err != nil {
		return err
	}
	if o.token, err = cf.bearer(); err != nil {
		return err
	}
	o.caCert, o.timeout, o.json = cf.caCert, cf.timeout, cf.json
	o.countSet, o.durSet = fs.isSet("count"), fs.isSet("duration")
	if err := o.validate(cf.addr, *mix); err != nil {
		return err
	}

	r, err := newBenchRun(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.preload > 0 {
		if err := r.runPreload(ctx); err != nil {
			return err
		}
	}
	rep, err := r.runMain(ctx)
	if err != nil {
		return err
	}
	switch {
	case o.json:
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	case o.markdown:
		fmt.Fprintln(stdout, rep.markdownRow(o.label))
	default:
		rep.printText(stdout)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d operations failed", rep.Errors, rep.OK+rep.Errors)
	}
	return nil
}

func (o *benchOptions) validate(addr, mix string) error {
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.addrs = append(o.addrs, a)
		}
	}
	if len(o.addrs) == 0 {
		return usagef("--addr: no address")
	}
	switch o.op {
	case "put", "get", "cas", "mixed":
	default:
		return usagef("--op %q: want put, get, cas or mixed", o.op)
	}
	switch o.consistency {
	case "", "stale", "leader", "linearizable":
	default:
		return usagef("--consistency %q: want stale, leader or linearizable", o.consistency)
	}
	if o.op == "mixed" {
		r, w, ok := strings.Cut(mix, ":")
		var err1, err2 error
		o.mixReads, err1 = strconv.Atoi(strings.TrimSpace(r))
		o.mixW, err2 = strconv.Atoi(strings.TrimSpace(w))
		if !ok || err1 != nil || err2 != nil || o.mixReads < 0 || o.mixW < 0 || o.mixReads+o.mixW == 0 {
			return usagef("--mix %q: want READS:WRITES, e.g. 90:10", mix)
		}
	}
	switch o.target {
	case "leader", "follower", "any":
	default:
		return usagef("--target %q: want leader, follower or any", o.target)
	}
	if o.clients < 1 {
		return usagef("--clients must be at least 1")
	}
	if strings.ContainsAny(o.token, "\r\n") {
		return usagef("--token must not contain a line break")
	}
	if o.conns == 0 {
		o.conns = o.clients
	}
	if o.conns < 1 {
		return usagef("--conns must be at least 1")
	}
	if o.preloadClients == 0 {
		o.preloadClients = max(o.clients, 16)
	}
	if o.keySize < 1 || o.keySize > 4096 {
		return usagef("--key-size must be 1 to 4096")
	}
	if o.valSize < 0 {
		return usagef("--value-size must not be negative")
	}
	if o.keys < 0 || o.preload < 0 {
		return usagef("--keys and --preload must not be negative")
	}
	if o.keys > 0 && o.preload > o.keys {
		o.preload = o.keys
	}
	if o.durSet {
		if o.duration <= 0 {
			return usagef("--duration must be positive")
		}
		if !o.countSet {
			o.count = 0 // no bound
		}
	}
	if o.count < 0 || (!o.durSet && o.count == 0) {
		return usagef("--count must be positive")
	}
	if (o.op == "get" || o.op == "mixed") && o.keys == 0 && o.preload == 0 {
		return usagef("--op %s reads existing keys: give --preload N (and/or --keys N)", o.op)
	}
	if o.op == "cas" && o.keys > 0 && o.keys < int64(o.clients) {
		return usagef("--op cas with --keys: each client owns a share of the keys, so --keys must be at least --clients")
	}
	return nil
}

// benchRun is one bench invocation: its targets, TLS configuration and
// counters.
type benchRun struct {
	o        *benchOptions
	stderr   io.Writer
	targets  []string // base URLs; client w uses targets[w%len]
	leader   string   // the leader's node ID
	tlsConf  *tls.Config
	prefix   string // random per run, so new keys are new
	digits   int    // key = prefix + index zero-padded to digits
	maxKey   int64  // 10^digits
	value    []byte
	preloadN int64           // keys [0, preloadN) exist
	versions []atomic.Uint64 // --op cas with --keys: each key's last version
	nextKey  atomic.Int64    // next new key
	issued   atomic.Int64
	ok       atomic.Int64
	errs     atomic.Int64
	misses   atomic.Int64
	samples  atomic.Int64

	preloadTime time.Duration

	mu         sync.Mutex
	errorKinds map[string]int64
	errorFirst map[string]string
}

func newBenchRun(ctx context.Context, o *benchOptions, stderr io.Writer) (*benchRun, error) {
	r := &benchRun{o: o, stderr: stderr, errorKinds: map[string]int64{}, errorFirst: map[string]string{}}
	var b [8]byte
	rand.Read(b[:])
	if o.keySize >= 12 {
		const letters = "abcdefghijklmnopqrstuvwxyz"
		p := make([]byte, 4)
		for i := range p {
			p[i] = letters[int(b[i])%len(letters)]
		}
		r.prefix = string(p)
	}
	r.digits = o.keySize - len(r.prefix)
	r.maxKey = math.MaxInt64
	if r.digits < 18 {
		r.maxKey = int64(math.Pow10(r.digits))
	}
	need := o.keys
	if need == 0 {
		need = o.preload + o.count
	}
	if need > r.maxKey {
		return nil, usagef("--key-size %d holds %d distinct keys, %d are needed", o.keySize, r.maxKey, need)
	}
	r.value = make([]byte, o.valSize)
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := range r.value {
		r.value[i] = 'a' + byte(rng.IntN(26))
	}
	r.preloadN = o.preload
	r.nextKey.Store(o.preload)
	if o.op == "cas" && o.keys > 0 {
		r.versions = make([]atomic.Uint64, o.keys)
	}

	var err error
	if r.tlsConf, err = tlsConfig(o.caCert); err != nil {
		return nil, err
	}
	if err := r.findTargets(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// findTargets asks every --addr for GET /v1/cluster and keeps the leader's
// (--target leader), the first follower's (--target follower) or all of
// them (--target any).
func (r *benchRun) findTargets(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		byID := map[string]string{}
		var bases, ids []string
		leader := ""
		var err error
		for _, a := range r.o.addrs {
			c, cerr := nodeClient(a, r.o.token, r.tlsConf, 5*time.Second)
			if cerr != nil {
				return fmt.Errorf("address: %w", cerr)
			}
			base := c.Endpoints()[0]
			ans, gerr := c.Cluster(ctx)
			if gerr != nil {
				err = fmt.Errorf("%s: GET /v1/cluster: %w", base, gerr)
				break
			}
			byID[ans.NodeID] = base
			bases = append(bases, base)
			ids = append(ids, ans.NodeID)
			if leader == "" {
				leader = ans.Leader
			}
		}
		if err == nil {
			r.leader = leader
			switch {
			case r.o.target == "any":
				r.targets = bases
				return nil
			case r.o.target == "follower" && leader != "":
				for i, id := range ids {
					if id != leader {
						r.targets = []string{bases[i]}
						return nil
					}
				}
				return fmt.Errorf("every --addr is the leader %s: list a follower's HTTP address too", leader)
			case leader != "" && byID[leader] != "":
				r.targets = []string{byID[leader]}
				return nil
			case leader != "":
				known := slices.Clone(ids)
				slices.Sort(known)
				return fmt.Errorf("the leader is %s, which is none of --addr (nodes %s): list every node's HTTP address, or use --target any", leader, strings.Join(known, ", "))
			}
			err = errors.New("the cluster has no leader")
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kinds of operation.
const (
	opRead = iota
	opWrite
	opCAS
)

// benchWorker is one client: its own random source, buffers and latencies.
type benchWorker struct {
	r    *benchRun
	id   int
	pool *benchPool // the connections to its target
	rng  *mrand.Rand
	key  []byte
	path []byte
	lat  [2][]time.Duration // [0]: reads (and the single op), [1]: writes of --op mixed
}

// newPools returns a pool of n connections to each target.
func (r *benchRun) newPools(ctx context.Context, n int) ([]*benchPool, error) {
	pools := make([]*benchPool, len(r.targets))
	for i, base := range r.targets {
		p, err := newBenchPool(ctx, base, r.o.token, r.tlsConf, n, r.o.timeout)
		if err != nil {
			closePools(pools[:i])
			return nil, err
		}
		pools[i] = p
	}
	return pools, nil
}

func closePools(pools []*benchPool) {
	for _, p := range pools {
		p.close()
	}
}

func (r *benchRun) newWorker(id int, pools []*benchPool, perWorker int64) *benchWorker {
	w := &benchWorker{
		r: r, id: id, pool: pools[id%len(pools)],
		rng: mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), uint64(id))),
		key: make([]byte, 0, r.o.keySize), path: make([]byte, 0, 256),
	}
	// Preallocate the latencies this worker should record, bounded by the
	// global sample cap; append grows them if the work is uneven.
	n := min(perWorker+perWorker/8+64, benchMaxSamples/int64(r.o.clients)+1)
	if r.o.op == "mixed" {
		tot := int64(r.o.mixReads + r.o.mixW)
		w.lat[0] = make([]time.Duration, 0, n*int64(r.o.mixReads)/tot+16)
		w.lat[1] = make([]time.Duration, 0, n*int64(r.o.mixW)/tot+16)
	} else {
		w.lat[0] = make([]time.Duration, 0, n)
	}
	return w
}

// keyName formats key i: the run's prefix and i zero-padded.
func (w *benchWorker) keyName(i int64) []byte {
	k := append(w.key[:0], w.r.prefix...)
	var d [20]byte
	s := strconv.AppendInt(d[:0], i, 10)
	for range w.r.digits - len(s) {
		k = append(k, '0')
	}
	w.key = append(k, s...)
	return w.key
}

// opResult is the outcome of one request.
type opResult int

const (
	resOK opResult = iota
	resMiss
	resError
	resCancelled
)

// do sends one operation on key i and classifies the answer. version is the
// expected version of a CAS; the new version of a write is returned when
// wantVersion.
func (w *benchWorker) do(ctx context.Context, kind int, i int64, casVersion uint64, wantVersion bool) (opResult, uint64) {
	r := w.r
	u := append(w.path[:0], "/v1/kv/"...)
	u = append(u, w.keyName(i)...) // letters and digits: nothing to escape
	method := http.MethodPut
	body := r.value
	switch kind {
	case opRead:
		method, body = http.MethodGet, nil
		if r.o.consistency != "" {
			u = append(u, "?consistency="...)
			u = append(u, r.o.consistency...)
		}
	case opCAS:
		u = append(u, "?cas="...)
		u = strconv.AppendUint(u, casVersion, 10)
	}
	w.path = u
	c := w.pool.get()
	if c == nil {
		return resCancelled, 0
	}
	defer w.pool.put(c)
	status, data, err := c.roundTrip(method, u, body)
	if err != nil {
		if ctx.Err() != nil {
			return resCancelled, 0
		}
		r.failErr(err)
		return resError, 0
	}
	if status/100 != 2 {
		if kind == opRead && status == http.StatusNotFound && i >= r.preloadN {
			return resMiss, 0
		}
		ae := &apiError{Status: status}
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		data = data[:min(len(data), 64<<10)]
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			ae.Code, ae.Message = e.Error.Code, e.Error.Message
		} else {
			ae.Message = strings.TrimSpace(string(data))
		}
		kindName := fmt.Sprintf("HTTP %d %s", ae.Status, ae.Code)
		if status == http.StatusNotFound && kind == opRead {
			kindName += " (a preloaded key)"
		}
		r.fail(strings.TrimSpace(kindName), ae.Error())
		return resError, 0
	}
	if kind == opRead {
		if len(data) != r.o.valSize {
			r.fail("wrong value size", fmt.Sprintf("key %s: %d bytes, want %d", w.key, len(data), r.o.valSize))
			return resError, 0
		}
		return resOK, 0
	}
	if !wantVersion {
		return resOK, 0
	}
	v, ok := parseVersion(data)
	if !ok {
		r.fail("bad answer", fmt.Sprintf("no version in %q", data))
		return resError, 0
	}
	return resOK, v
}

// parseVersion reads N from {"version":N} without a JSON decoder.
func parseVersion(b []byte) (uint64, bool) {
	i := bytes.Index(b, []byte(`"version"`))
	if i < 0 {
		return 0, false
	}
	b = bytes.TrimLeft(b[i+len(`"version"`):], " \t\r\n:")
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, ok := parseDecimal(b[:j])
	return uint64(v), ok
}

func (r *benchRun) failErr(err error) {
	var ne net.Error
	var me *benchMalformedError
	switch {
	case errors.As(err, &me):
		r.fail("malformed answer", err.Error())
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		r.fail("timeout", err.Error())
	default:
		msg := err.Error()
		kind := msg
		// "Put \"http://…\": dial tcp …: connect: connection refused" → the cause.
		if _, after, ok := strings.Cut(msg, "\": "); ok {
			kind = after
		}
		if len(kind) > 60 {
			kind = kind[:60]
		}
		r.fail("network: "+kind, msg)
	}
}

// fail counts an error of a kind, keeping the first message of each kind.
func (r *benchRun) fail(kind, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.errorKinds[kind]; !ok && len(r.errorKinds) >= 20 {
		kind = "other"
	}
	r.errorKinds[kind]++
	if _, ok := r.errorFirst[kind]; !ok {
		r.errorFirst[kind] = msg
	}
}

// pick chooses the kind and key of the next operation.
func (w *benchWorker) pick() (kind int, i int64, ok bool) {
	r, o := w.r, w.r.o
	kind = opWrite
	switch o.op {
	case "get":
		kind = opRead
	case "cas":
		kind = opCAS
	case "mixed":
		if w.rng.IntN(o.mixReads+o.mixW) < o.mixReads {
			kind = opRead
		}
	}
	switch {
	case kind == opRead && o.keys > 0:
		i = w.rng.Int64N(o.keys)
	case kind == opRead:
		i = w.rng.Int64N(r.preloadN)
	case kind == opCAS && o.keys > 0:
		// Client w owns the keys i ≡ w (mod clients), so it knows their versions.
		c := int64(o.clients)
		n := (o.keys - int64(w.id) + c - 1) / c
		i = int64(w.id) + c*w.rng.Int64N(n)
	case o.keys > 0:
		i = w.rng.Int64N(o.keys)
	default:
		i = r.nextKey.Add(1) - 1
		if i >= r.maxKey {
			return 0, 0, false
		}
	}
	return kind, i, true
}

// runMain runs the benchmark and returns its report.
func (r *benchRun) runMain(ctx context.Context) (*benchReport, error) {
	o := r.o
	per := o.count / int64(o.clients)
	if o.durSet {
		per = benchMaxSamples / int64(o.clients)
		per = min(per, 1<<16)
		if o.count > 0 {
			per = min(per, o.count/int64(o.clients))
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pools, err := r.newPools(ctx, o.conns)
	if err != nil {
		return nil, err
	}
	defer closePools(pools)
	workers := make([]*benchWorker, o.clients)
	for i := range workers {
		workers[i] = r.newWorker(i, pools, per)
	}
	start := time.Now()
	var deadline time.Time
	if o.durSet {
		deadline = start.Add(o.duration)
	}
	stopProgress := r.startProgress("", o.count, o.duration, start, func() int64 { return r.ok.Load() + r.errs.Load() }, r.errs.Load)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if o.count > 0 && r.issued.Add(1) > o.count {
					return
				}
				kind, i, ok := w.pick()
				if !ok {
					return
				}
				var casVersion uint64
				if kind == opCAS && r.versions != nil {
					casVersion = r.versions[i].Load()
				}
				t0 := time.Now()
				if !deadline.IsZero() && t0.After(deadline) {
					return
				}
				res, v := w.do(ctx, kind, i, casVersion, kind == opCAS && r.versions != nil)
				d := time.Since(t0)
				switch res {
				case resOK, resMiss:
					r.ok.Add(1)
					if res == resMiss {
						r.misses.Add(1)
					}
					if kind == opCAS && r.versions != nil {
						r.versions[i].Store(v)
					}
					if r.samples.Add(1) <= benchMaxSamples {
						j := 0
						if o.op == "mixed" && kind == opWrite {
							j = 1
						}
						w.lat[j] = append(w.lat[j], d)
					}
				case resError:
					r.errs.Add(1)
				case resCancelled:
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	rep := &benchReport{
		Op: o.op, Consistency: o.consistency, Clients: o.clients, Conns: o.conns, Target: o.target,
		Leader: r.leader, Addrs: r.targets, KeySize: o.keySize, ValueSize: o.valSize, Keys: o.keys,
		Preload: o.preload, OK: r.ok.Load(), Errors: r.errs.Load(), NotFound: r.misses.Load(),
		ElapsedSeconds: elapsed.Seconds(), Interrupted: ctx.Err() != nil,
	}
	if o.op == "mixed" {
		rep.Mix = fmt.Sprintf("%d:%d", o.mixReads, o.mixW)
	}
	if elapsed > 0 {
		rep.OpsPerSec = float64(rep.OK) / elapsed.Seconds()
	}
	var all, reads, writes []time.Duration
	for _, w := range workers {
		reads = append(reads, w.lat[0]...)
		writes = append(writes, w.lat[1]...)
	}
	if o.op == "mixed" {
		all = append(append(make([]time.Duration, 0, len(reads)+len(writes)), reads...), writes...)
		rep.Reads = &benchOpStats{Count: int64(len(reads)), OpsPerSec: float64(len(reads)) / elapsed.Seconds(), Latency: latencyOf(reads)}
		rep.Writes = &benchOpStats{Count: int64(len(writes)), OpsPerSec: float64(len(writes)) / elapsed.Seconds(), Latency: latencyOf(writes)}
	} else {
		all = reads
	}
	rep.Latency = latencyOf(all)
	if len(r.errorKinds) > 0 {
		rep.ErrorKinds = r.errorKinds
		rep.errorFirst = r.errorFirst
	}
	rep.PreloadSeconds = r.preloadTime.Seconds()
	return rep, nil
}

// runPreload writes keys [0, preload) with --preload-clients clients,
// remembering their versions for --op cas.
func (r *benchRun) runPreload(ctx context.Context) error {
	o := r.o
	n := o.preload
	clients := int(min(int64(o.preloadClients), n))
	pools, err := r.newPools(ctx, clients)
	if err != nil {
		return err
	}
	defer closePools(pools)
	pr := &benchRun{
		o: o, stderr: r.stderr, targets: r.targets, prefix: r.prefix, digits: r.digits, maxKey: r.maxKey,
		value: r.value, errorKinds: map[string]int64{}, errorFirst: map[string]string{},
	}
	var next, done atomic.Int64
	start := time.Now()
	stop := r.startProgress("preload", n, 0, start, done.Load, pr.errs.Load)
	var wg sync.WaitGroup
	for c := range clients {
		w := &benchWorker{r: pr, id: c, pool: pools[c%len(pools)], key: make([]byte, 0, o.keySize), path: make([]byte, 0, 256)}
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				res, v := w.do(ctx, opWrite, i, 0, r.versions != nil)
				if res != resOK {
					pr.errs.Add(1)
					return
				}
				if r.versions != nil {
					r.versions[i].Store(v)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	r.preloadTime = time.Since(start)
	stop()
	if err := ctx.Err(); err != nil {
		return err
	}
	if pr.errs.Load() > 0 {
		var kinds []string
		for kind, msg := range pr.errorFirst {
			kinds = append(kinds, kind+": "+msg)
		}
		slices.Sort(kinds)
		return fmt.Errorf("preload: %d of %d keys written, then %s", done.Load(), n, strings.Join(kinds, "; "))
	}
	return nil
}

// startProgress shows a progress bar on stderr (a terminal, or --progress)
// until the returned function is called. total > 0: operations to do;
// dur > 0: the run's length.
func (r *benchRun) startProgress(label string, total int64, dur time.Duration, start time.Time, done, errs func() int64) func() {
	o := r.o
	terminal := isTerminal(r.stderr)
	if o.quiet || !terminal && !o.progress {
		return func() {}
	}
	every := time.Second
	if terminal {
		every = 200 * time.Millisecond
	}
	if label == "" {
		label = o.op
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		var last int64
		lastT := start
		for {
			select {
			case <-stop:
				if terminal {
					fmt.Fprint(r.stderr, "\r\x1b[K")
				}
				return
			case now := <-t.C:
				n := done()
				rate := float64(n-last) / now.Sub(lastT).Seconds()
				last, lastT = n, now
				frac := 0.0
				what := fmt.Sprintf("%d", n)
				if total > 0 {
					frac = float64(n) / float64(total)
					what = fmt.Sprintf("%d/%d", n, total)
				}
				if dur > 0 {
					frac = max(frac, float64(now.Sub(start))/float64(dur))
					what += fmt.Sprintf(" %s/%s", now.Sub(start).Round(time.Second), dur)
				}
				frac = min(frac, 1)
				const width = 30
				bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
				line := fmt.Sprintf("%s [%s] %3.0f%% %s  %.0f ops/s  %d errors", label, bar, frac*100, what, rate, errs())
				if terminal {
					fmt.Fprintf(r.stderr, "\r%s\x1b[K", line)
				} else {
					fmt.Fprintln(r.stderr, line)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
	}
}

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// benchReport is the result, printed as text, JSON or a markdown row.
type benchReport struct {
	Op             string           `json:"op"`
	Consistency    string           `json:"consistency,omitempty"`
	Mix            string           `json:"mix,omitempty"`
	Clients        int              `json:"clients"`
	Conns          int              `json:"conns"`
	Target         string           `json:"target"`
	Leader         string           `json:"leader,omitempty"`
	Addrs          []string         `json:"addrs"`
	KeySize        int              `json:"key_size"`
	ValueSize      int              `json:"value_size"`
	Keys           int64            `json:"keys"`
	Preload        int64            `json:"preload"`
	PreloadSeconds float64          `json:"preload_seconds,omitempty"`
	OK             int64            `json:"ok"`
	Errors         int64            `json:"errors"`
	NotFound       int64            `json:"not_found"`
	ElapsedSeconds float64          `json:"elapsed_seconds"`
	OpsPerSec      float64          `json:"ops_per_sec"`
	Latency        benchLatency     `json:"latency"`
	Reads          *benchOpStats    `json:"reads,omitempty"`
	Writes         *benchOpStats    `json:"writes,omitempty"`
	ErrorKinds     map[string]int64 `json:"error_kinds,omitempty"`
	Interrupted    bool             `json:"interrupted,omitempty"`
	errorFirst     map[string]string
}

// benchOpStats are the reads or writes of --op mixed.
type benchOpStats struct {
	Count     int64        `json:"count"`
	OpsPerSec float64      `json:"ops_per_sec"`
	Latency   benchLatency `json:"latency"`
}

// benchLatency summarises the latencies of confirmed operations, in
// milliseconds.
type benchLatency struct {
	Samples int64   `json:"samples"`
	Mean    float64 `json:"mean_ms"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p99_9_ms"`
	Max     float64 `json:"max_ms"`
}

// latencyOf sorts d and returns its percentiles (nearest rank).
func latencyOf(d []time.Duration) benchLatency {
	if len(d) == 0 {
		return benchLatency{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	pct := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(d)))) - 1
		return ms(d[max(0, min(i, len(d)-1))])
	}
	return benchLatency{
		Samples: int64(len(d)), Mean: ms(sum / time.Duration(len(d))),
		P50: pct(50), P90: pct(90), P99: pct(99), P999: pct(99.9), Max: ms(d[len(d)-1]),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// fmtMs formats milliseconds with about three significant digits.
func fmtMs(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	case v < 10000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.1fs", v/1000)
}

func (l benchLatency) String() string {
	if l.Samples == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)",
		fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), fmtMs(l.Mean))
}

func (rep *benchReport) describe() string {
	s := rep.Op
	switch rep.Op {
	case "get":
		s = "read " + orDefault(rep.Consistency, "leader")
	case "put":
		s = "write"
	case "cas":
		s = "cas"
	case "mixed":
		s = fmt.Sprintf("mixed %s (%s reads)", rep.Mix, orDefault(rep.Consistency, "leader"))
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (rep *benchReport) printText(w io.Writer) {
	keys := "new keys"
	switch {
	case rep.Keys > 0:
		keys = fmt.Sprintf("%d keys", rep.Keys)
	case rep.Op == "get":
		keys = fmt.Sprintf("the %d preloaded keys", rep.Preload)
	case rep.Op == "mixed":
		keys = fmt.Sprintf("reads of the %d preloaded keys, writes of new keys", rep.Preload)
	}
	target := rep.Target
	switch rep.Target {
	case "leader":
		target = "leader " + rep.Leader
	case "follower":
		target = "a follower of leader " + rep.Leader
	}
	fmt.Fprintf(w, "%s: %d clients, %d conns, %s (%s), %d B keys, %d B values, %s\n",
		rep.describe(), rep.Clients, rep.Conns, target, strings.Join(rep.Addrs, ","), rep.KeySize, rep.ValueSize, keys)
	if rep.Preload > 0 {
		fmt.Fprintf(w, "preload:    %d keys in %.2fs\n", rep.Preload, rep.PreloadSeconds)
	}
	interrupted := ""
	if rep.Interrupted {
		interrupted = " (interrupted)"
	}
	fmt.Fprintf(w, "done:       %d ok, %d errors in %.2fs%s\n", rep.OK, rep.Errors, rep.ElapsedSeconds, interrupted)
	if rep.NotFound > 0 {
		fmt.Fprintf(w, "not found:  %d (keys never written; counted as ok)\n", rep.NotFound)
	}
	fmt.Fprintf(w, "throughput: %.0f ops/s\n", rep.OpsPerSec)
	fmt.Fprintf(w, "latency:    %s\n", rep.Latency)
	if rep.Reads != nil {
		fmt.Fprintf(w, "  reads:    %d, %.0f ops/s, %s\n", rep.Reads.Count, rep.Reads.OpsPerSec, rep.Reads.Latency)
		fmt.Fprintf(w, "  writes:   %d, %.0f ops/s, %s\n", rep.Writes.Count, rep.Writes.OpsPerSec, rep.Writes.Latency)
	}
	kinds := make([]string, 0, len(rep.ErrorKinds))
	for k := range rep.ErrorKinds {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return int(rep.ErrorKinds[b] - rep.ErrorKinds[a]) })
	for _, k := range kinds {
		fmt.Fprintf(w, "errors:     %d × %s, first: %s\n", rep.ErrorKinds[k], k, rep.errorFirst[k])
	}
}

// markdownRow is | op | clients | ops/s | p50 | p99 | p99.9 | max | errors |.
func (rep *benchReport) markdownRow(label string) string {
	if label == "" {
		label = rep.describe()
	}
	l := rep.Latency
	return fmt.Sprintf("| %s | %d | %.0f | %s | %s | %s | %s | %d |",
		label, rep.Clients, rep.OpsPerSec, fmtMs(l.P50), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), rep.Errors)
}
