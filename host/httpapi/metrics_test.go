package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// scrape returns n's /metrics as series (name and labels, as printed) to value.
func scrape(t *testing.T, n *node) map[string]float64 {
	t.Helper()
	r := do(t, "GET", n.url+"/metrics", nil)
	wantOK(t, r)
	series := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

// metric returns a series' value and fails the test if it is absent.
func metric(t *testing.T, series map[string]float64, name string) float64 {
	t.Helper()
	v, ok := series[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return v
}

// TestRaftMetrics scrapes the Raft metrics of a real 3-node cluster: term,
// state, last contact, configuration size, snapshot index, pending batches,
// and leader changes counted when the leader steps down.
func TestRaftMetrics(t *testing.T) {
	tc := startCluster(t, 3)
	l := tc.leader()
	f := tc.followers()[0]
	put(t, l, "m", "v")

	ls, fs := scrape(t, l), scrape(t, f)
	for _, s := range []map[string]float64{ls, fs} {
		if metric(t, s, "raftkv_raft_term") < 1 {
			t.Error("raftkv_raft_term < 1")
		}
		if metric(t, s, "raftkv_raft_voters") != 3 || metric(t, s, "raftkv_raft_nonvoters") != 0 {
			t.Error("raftkv_raft_voters != 3 or raftkv_raft_nonvoters != 0")
		}
		metric(t, s, "raftkv_raft_last_snapshot_index")
		if metric(t, s, "raftkv_raft_fsm_pending") < 0 {
			t.Error("raftkv_raft_fsm_pending < 0")
		}
		// Counted from the node's start: the first election is seen.
		if metric(t, s, "raftkv_raft_leader_changes_total") < 1 {
			t.Error("the first election is not counted")
		}
		if metric(t, s, `raftkv_raft_state{state="candidate"}`) != 0 || metric(t, s, `raftkv_raft_state{state="shutdown"}`) != 0 {
			t.Error("candidate or shutdown state set")
		}
	}
	if metric(t, ls, `raftkv_raft_state{state="leader"}`) != 1 || metric(t, ls, `raftkv_raft_state{state="follower"}`) != 0 {
		t.Errorf("leader's state gauges: %v", ls)
	}
	if metric(t, fs, `raftkv_raft_state{state="follower"}`) != 1 || metric(t, fs, `raftkv_raft_state{state="leader"}`) != 0 {
		t.Errorf("follower's state gauges: %v", fs)
	}
	if metric(t, ls, "raftkv_raft_last_contact_seconds") != 0 {
		t.Error("the leader's last contact is not 0")
	}
	if c := metric(t, fs, "raftkv_raft_last_contact_seconds"); c <= 0 || c > 30 {
		t.Errorf("follower's last contact %v s", c)
	}
	if metric(t, ls, "raftkv_raft_term") != metric(t, fs, "raftkv_raft_term") {
		t.Error("leader and follower disagree on the term")
	}

	// The leader steps down (Close hands leadership over): the others count
	// the change, and the new leader's term is later.
	term := metric(t, ls, "raftkv_raft_term")
	put(t, l, "m", "v2")
	changes := metric(t, scrape(t, f), "raftkv_raft_leader_changes_total")
	if changes != metric(t, fs, "raftkv_raft_leader_changes_total") {
		t.Errorf("leader changes counted in a stable cluster: %v, then %v", metric(t, fs, "raftkv_raft_leader_changes_total"), changes)
	}
	tc.c.Stop(l.m)
	cluster.Poll(t, 30*time.Second, func() bool {
		s := scrape(t, f)
		return s["raftkv_raft_leader_changes_total"] > changes && s["raftkv_raft_term"] > term &&
			s[`raftkv_raft_state{state="leader"}`]+s[`raftkv_raft_state{state="follower"}`] == 1
	}, "%s never counted the leader change", f.m.ID)
}

// TestResultCodeLabels: raftkv_plugin_commands_total keeps the ABI's named
// codes as labels and counts every plugin-defined code as "other", so that a
// plugin cannot create a time series per code.
func TestResultCodeLabels(t *testing.T) {
	t.Parallel() // a node of its own: beside the package's other tests
	wasm := wasmbuild.Build(t, "./testdata/codes")
	tc := startCluster(t, 1)
	l := tc.leader()
	wantOK(t, do(t, "PUT", l.url+"/v1/plugins/codes", wasm))
	sent := map[int]int{0: 2, 3: 1, 64: 1, 200: 2, 255: 1}
	for code, times := range sent {
		for range times {
			r := do(t, "POST", l.url+"/v1/plugins/codes/commands", strconv.Itoa(code))
			if (code == 0) != (r.status == 200) {
				t.Fatalf("code %d: %s", code, r)
			}
		}
	}
	s := scrape(t, l)
	series := func(code string) string {
		return fmt.Sprintf(`raftkv_plugin_commands_total{code="%s",plugin="codes"}`, code)
	}
	for code, want := range map[string]float64{"ok": 2, "conflict": 1, "other": 4} {
		if got := metric(t, s, series(code)); got != want {
			t.Errorf("%s = %v, want %v", series(code), got, want)
		}
	}
	for name := range s {
		if strings.HasPrefix(name, "raftkv_plugin_commands_total{") && strings.Contains(name, `code="plugin_`) {
			t.Errorf("per-code series %s", name)
		}
	}
}
