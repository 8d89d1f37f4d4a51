package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// workload is one row of the table, run once per system per round.
type workload struct {
	label       string
	op          string // put or get
	consistency string // get: linearizable or stale
	clients     int
}

var workloads = []workload{
	{label: "write", op: "put", clients: 1},
	{label: "write", op: "put", clients: 64},
	{label: "read linearizable", op: "get", consistency: "linearizable", clients: 64},
	{label: "read stale", op: "get", consistency: "stale", clients: 64},
}

// result is what one run measured.
type result struct {
	ops, errors int64
	errorKinds  string // what the errors were, for the log
	elapsed     time.Duration
	opsPerSec   float64
	p50, p99    float64 // milliseconds
}

// options are the command line (each flag also has an environment default,
// so `make bench` passes knobs through).
type options struct {
	raftkvBin string
	benchBin  string
	duration  time.Duration
	preload   int64
	rounds    int
	etcdConns int
	dir       string
	keep      bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "etcd-node" {
		if err := runEtcdNode(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "etcd-vs-raftkv:", err)
		os.Exit(1)
	}
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

func envScale() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_SCALE"), 64); err == nil && v > 0 {
		return v
	}
	return 1
}

func run(args []string, stdout, stderr io.Writer) error {
	scale := envScale()
	fs := flag.NewFlagSet("etcd-vs-raftkv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	fs.StringVar(&o.raftkvBin, "raftkv-bin", "bin/raftkv", "the raftkv binary to run")
	fs.StringVar(&o.benchBin, "bench-bin", "bin/raftkv-bench", "the raftkv-bench binary that loads raftkv")
	fs.DurationVar(&o.duration, "duration", time.Duration(float64(envDuration("BENCH_ETCD_DURATION", 5*time.Second))*scale),
		"length of each run (env BENCH_ETCD_DURATION, default 5s, times BENCH_SCALE)")
	fs.Int64Var(&o.preload, "preload", max(1, int64(float64(envInt("BENCH_PRELOAD", 10000))*scale)),
		"keys written before each read run, not measured (env BENCH_PRELOAD, default 10000, times BENCH_SCALE)")
	fs.IntVar(&o.rounds, "rounds", int(envInt("BENCH_ETCD_ROUNDS", 2)),
		"runs of every workload per system, alternating which system goes first; the table shows each system's best (env BENCH_ETCD_ROUNDS)")
	fs.IntVar(&o.etcdConns, "etcd-conns", int(envInt("BENCH_ETCD_CONNS", 8)),
		"etcd client connections (clientv3 instances) the clients share, at most --clients (env BENCH_ETCD_CONNS)")
	fs.StringVar(&o.dir, "dir", "", "directory for both clusters' data and logs (default: a new temporary one)")
	fs.BoolVar(&o.keep, "keep", os.Getenv("BENCH_KEEP") == "1", "keep the data and logs (env BENCH_KEEP=1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.rounds < 1 || o.etcdConns < 1 || o.duration <= 0 {
		return errors.New("--rounds, --etcd-conns and --duration must be positive")
	}
	for _, b := range []*string{&o.raftkvBin, &o.benchBin} {
		abs, err := filepath.Abs(*b)
		if err != nil {
			return err
		}
		*b = abs
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ok := false
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "raftkv-vs-etcd."); err != nil {
			return err
		}
	}
	defer func() {
		if ok && !o.keep {
			os.RemoveAll(o.dir)
		} else {
			fmt.Fprintln(stderr, "etcd-vs-raftkv: data and logs kept in", o.dir)
		}
	}()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "etcd-vs-raftkv: "+format+"\n", a...) }

	var procs processes
	defer procs.stopAll(logf)

	rk, err := startRaftkv(ctx, &procs, o.raftkvBin, o.benchBin, filepath.Join(o.dir, "raftkv"), logf)
	if err != nil {
		return fmt.Errorf("raftkv cluster: %w", err)
	}
	ec, err := startEtcd(ctx, &procs, self, filepath.Join(o.dir, "etcd"), logf)
	if err != nil {
		return fmt.Errorf("etcd cluster: %w", err)
	}
	defer ec.close()

	loadBefore := loadavg()
	type pair struct {
		raftkv, etcd       result // each system's best round
		raftkvErr, etcdErr int64  // errors over every round
	}
	rows := make([]pair, len(workloads))
	failed := false
	for round := 0; round < o.rounds; round++ {
		for i, w := range workloads {
			order := []string{"raftkv", "etcd"}
			if (i+round)%2 == 1 {
				order = []string{"etcd", "raftkv"}
			}
			for _, sys := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				var r result
				var err error
				if sys == "raftkv" {
					r, err = rk.bench(ctx, w, o.duration, o.preload)
				} else {
					r, err = ec.bench(ctx, w, o.duration, o.preload, o.etcdConns)
				}
				if err != nil {
					return fmt.Errorf("%s %s c=%d: %w", sys, w.label, w.clients, err)
				}
				kinds := ""
				if r.errors > 0 {
					failed = true
					kinds = " (" + r.errorKinds + ")"
				}
				logf("round %d, %s %s c=%d: %.0f ops/s, p50 %.3f ms, p99 %.3f ms, %d errors%s",
					round+1, sys, w.label, w.clients, r.opsPerSec, r.p50, r.p99, r.errors, kinds)
				best, errSum := &rows[i].raftkv, &rows[i].raftkvErr
				if sys == "etcd" {
					best, errSum = &rows[i].etcd, &rows[i].etcdErr
				}
				*errSum += r.errors
				if r.opsPerSec > best.opsPerSec {
					*best = r
				}
			}
		}
	}
	loadAfter := loadavg()

	fmt.Fprintf(stdout, "\nraftkv vs etcd (embedded %s), 3 nodes each on loopback, side by side, %d CPUs; 16 B keys, 100 B values, writes to new keys; %s per run, best of %d alternating round(s); etcd clients share %d connection(s)\n\n",
		etcdVersion(), runtime.NumCPU(), o.duration, o.rounds, o.etcdConns)
	fmt.Fprintln(stdout, "| op | clients | raftkv ops/s | etcd ops/s | raftkv/etcd | raftkv p50 | etcd p50 | raftkv p99 | etcd p99 | errors, all rounds (raftkv/etcd) |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|---|")
	for i, w := range workloads {
		r, e := rows[i].raftkv, rows[i].etcd
		ratio := "n/a"
		if e.opsPerSec > 0 {
			ratio = fmt.Sprintf("%.2f", r.opsPerSec/e.opsPerSec)
		}
		label := w.label
		if w.consistency == "stale" {
			label = "read stale (etcd: serializable)"
		}
		fmt.Fprintf(stdout, "| %s | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %d/%d |\n",
			label, w.clients, r.opsPerSec, e.opsPerSec, ratio, fmtMs(r.p50), fmtMs(e.p50), fmtMs(r.p99), fmtMs(e.p99), rows[i].raftkvErr, rows[i].etcdErr)
	}
	fmt.Fprintf(stdout, "\nload average before: %s; after: %s\n", loadBefore, loadAfter)
	if failed {
		return errors.New("some runs had errors")
	}
	ok = true
	return nil
}

// fmtMs formats milliseconds with about three significant digits.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	default:
		return fmt.Sprintf("%.1fms", v)
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
