package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func etcdVersion() string { return "etcd v" + version.Version }

// etcdCluster is three embedded etcd servers, each in a child process of
// this binary (`etcd-node`), on 127.0.8.11-13.
type etcdCluster struct {
	members []etcdMember
	leader  string // the leader's client URL
}

func startEtcd(ctx context.Context, procs *processes, self, dir string, logf func(string, ...any)) (*etcdCluster, error) {
	c := &etcdCluster{}
	for i := 1; i <= 3; i++ {
		c.members = append(c.members, etcdMember{name: fmt.Sprintf("e%d", i), ip: fmt.Sprintf("127.0.8.%d", 10+i)})
	}
	ic := initialCluster(c.members)
	for _, m := range c.members {
		data := filepath.Join(dir, m.name)
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		logPath := filepath.Join(dir, m.name+".log")
		if err := procs.start(exec.Command(self, "etcd-node", m.name, m.ip, data, ic), logPath); err != nil {
			return nil, fmt.Errorf("start %s: %w", m.name, err)
		}
		logf("started etcd %s on %s, log %s", m.name, m.clientURL(), logPath)
	}
	// Ready when one member reports a leader that every member agrees on.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		leader, err := c.findLeader(ctx)
		if err == nil {
			c.leader = leader
			logf("etcd leader: %s", leader)
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader after 2m: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL())
	}
	return eps
}

// findLeader asks every member for its status and returns the client URL of
// the member that is the leader.
func (c *etcdCluster) findLeader(ctx context.Context) (string, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		return "", err
	}
	defer cli.Close()
	leader := ""
	for _, ep := range c.endpoints() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil {
			return "", fmt.Errorf("status of %s: %w", ep, err)
		}
		if st.Leader == 0 {
			return "", fmt.Errorf("%s has no leader yet", ep)
		}
		if st.Leader == st.Header.MemberId {
			leader = ep
		}
	}
	if leader == "" {
		return "", fmt.Errorf("no member says it is the leader")
	}
	return leader, nil
}

func (c *etcdCluster) close() {}

const letters = "abcdefghijklmnopqrstuvwxyz"

func randLetters(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// key is raftkv-bench's 16-byte key: a 4-letter prefix and a 12-digit number.
func key(prefix string, n int64) string { return fmt.Sprintf("%s%012d", prefix, n) }

// bench runs w for d against the leader through conns clientv3 clients
// shared round-robin by w.clients goroutines, each with one request in
// flight. Reads go over preload keys written first (not measured).
func (c *etcdCluster) bench(ctx context.Context, w workload, d time.Duration, preload int64, conns int) (result, error) {
	// The leader may have moved (it does not under this load, but check).
	if leader, err := c.findLeader(ctx); err == nil {
		c.leader = leader
	}
	conns = min(conns, w.clients)
	clis := make([]*clientv3.Client, conns)
	for i := range clis {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.leader}, DialTimeout: 5 * time.Second})
		if err != nil {
			return result{}, err
		}
		defer cli.Close()
		clis[i] = cli
	}
	value := randLetters(100)
	prefix := randLetters(4)

	if w.op == "get" {
		var next atomic.Int64
		var wg sync.WaitGroup
		errc := make(chan error, 16)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cli := clis[g%len(clis)]
				for {
					n := next.Add(1) - 1
					if n >= preload {
						return
					}
					if _, err := cli.Put(ctx, key(prefix, n), value); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return result{}, fmt.Errorf("preload: %w", err)
		}
	}

	var opts []clientv3.OpOption
	if w.consistency == "stale" {
		opts = append(opts, clientv3.WithSerializable())
	}
	var next atomic.Int64
	var errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, w.clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for g := 0; g < w.clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[g%len(clis)]
			rng := rand.New(rand.NewPCG(uint64(g), uint64(start.UnixNano())))
			samples := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(deadline) || ctx.Err() != nil {
					break
				}
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				var err error
				if w.op == "put" {
					_, err = cli.Put(octx, key(prefix, next.Add(1)), value)
				} else {
					var resp *clientv3.GetResponse
					resp, err = cli.Get(octx, key(prefix, rng.Int64N(preload)), opts...)
					if err == nil && len(resp.Kvs) != 1 {
						err = fmt.Errorf("preloaded key not found")
					}
				}
				cancel()
				if err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				samples = append(samples, time.Since(t0))
			}
			lat[g] = samples
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{ops: int64(len(all)), errors: errs.Load(), elapsed: elapsed}
	if e, ok := firstErr.Load().(string); ok {
		r.errorKinds = "first: " + e
	}
	r.opsPerSec = float64(r.ops) / elapsed.Seconds()
	if len(all) > 0 {
		pct := func(p float64) float64 {
			i := min(len(all)-1, max(0, int(float64(len(all))*p/100+0.999999)-1))
			return float64(all[i]) / 1e6
		}
		r.p50, r.p99 = pct(50), pct(99)
	}
	return r, ctx.Err()
}
