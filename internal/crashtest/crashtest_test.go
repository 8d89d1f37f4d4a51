package crashtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host/logstore"
)

// The test binary is also the worker: run with these set, it runs Worker on
// fd 3 instead of the tests.
const (
	envWorker  = "RAFTKV_CRASHTEST_WORKER" // the store kind
	envDir     = "RAFTKV_CRASHTEST_DIR"
	envSeed    = "RAFTKV_CRASHTEST_SEED"
	envSegment = "RAFTKV_CRASHTEST_SEGMENT"

	// RAFTKV_CRASH_ITERATIONS sets the kills per store (make chaos runs
	// thousands); RAFTKV_CRASH_SEED replays a run.
	envIterations = "RAFTKV_CRASH_ITERATIONS"
	envRunSeed    = "RAFTKV_CRASH_SEED"
)

// segmentBytes is small, so that segments fill, are sealed and roll over
// every few dozen operations (raft-wal#31 was a sealed segment).
const segmentBytes = 64 << 10

func TestMain(m *testing.M) {
	if kind := os.Getenv(envWorker); kind != "" {
		seed, _ := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
		seg, _ := strconv.Atoi(os.Getenv(envSegment))
		err := Worker(os.Getenv(envDir), kind, seg, seed, os.NewFile(3, "reports"))
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// TestCrashWAL and TestCrashBolt kill a worker process many times at random
// points of random appends and truncations, and check after each kill that
// the reopened store holds exactly what was acknowledged (see the package
// doc). Fails with raft-wal v0.4.0 (the log of a kill after a tail
// truncation cannot be reopened: "sealed segment has no index block").
func TestCrashWAL(t *testing.T)  { testCrash(t, logstore.WAL) }
func TestCrashBolt(t *testing.T) { testCrash(t, logstore.Bolt) }

func testCrash(t *testing.T, kind string) {
	iterations := 20 // make test; make crashtest runs thousands
	if testing.Short() {
		iterations = 5
	}
	if v := os.Getenv(envIterations); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive count", envIterations, v)
		}
		iterations = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envRunSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envRunSeed, v, err)
		}
	}
	t.Logf("%s: %d kills, seed %d (replay: %s=%d %s=%d)", kind, iterations, seed, envRunSeed, seed, envIterations, iterations)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	open := func() (logstore.Store, error) {
		s, _, err := logstore.Open(logstore.Config{Dir: dir, Kind: kind, WALSegmentBytes: segmentBytes})
		return s, err
	}
	m := NewModel()
	var acked, inFlight, before, after, prefix int
	for i := range iterations {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envWorker+"="+kind, envDir+"="+dir,
			envSeed+"="+strconv.FormatUint(rng.Uint64(), 10), envSegment+"="+strconv.Itoa(segmentBytes))
		// Mostly within a few hundred operations; now and then at once,
		// during the worker's own open.
		killAfter := 1 + rng.IntN(300)
		if rng.IntN(10) == 0 {
			killAfter = 0
		}
		delay := time.Duration(rng.IntN(2000)) * time.Microsecond
		it, err := Iterate(cmd, m, killAfter, delay, open)
		if err != nil {
			t.Fatalf("kill %d of %d (seed %d): %v", i+1, iterations, seed, err)
		}
		acked += it.Acked
		if it.InFlight != "" {
			inFlight++
			switch it.Outcome {
			case "before":
				before++
			case "after":
				after++
			default:
				prefix++
			}
		}
	}
	t.Logf("%s: %d kills, %d operations acknowledged, %d kills during an operation (store showed: %d before it, %d after it, %d a prefix of the batch); log at the end %d..%d",
		kind, iterations, acked, inFlight, before, after, prefix, m.First, m.Last)
}
