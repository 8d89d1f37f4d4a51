package host

import (
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/raftkv/raftkv/internal/fsm"
)

// metrics are the node's Prometheus instruments (see Node.Collectors).
type metrics struct {
	fsm           *fsm.Metrics // the state machine's (internal/fsm)
	leaderChanges prometheus.Counter
	raftRefused   prometheus.Counter
	rpcRefused    prometheus.Counter
	// forwardBatch: forwarded writes per apply request this node sent
	// (host/peerrpc/batch.go).
	forwardBatch prometheus.Histogram
	// digestComparisons counts comparisons of this node's state digests
	// with another node's; divergences the differences they found
	// (digestcheck.go).
	digestComparisons prometheus.Counter
	divergences       prometheus.Counter
	collectors        []prometheus.Collector
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		fsm: fsm.NewMetrics(),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_raft_leader_changes_total",
			Help: "Times this node saw the Raft leader change (to another node or to none), since its metrics were first collected.",
		}),
		raftRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_peer_raft_rpcs_refused_total",
			Help: "Raft RPCs refused because their sender was not the node it proved to be over SSH, or not a voter of this node's configuration (the connection is closed).",
		}),
		rpcRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_peer_rpcs_refused_total",
			Help: "Forwarding RPCs refused because the calling node may not call that method (see SECURITY.md).",
		}),
		forwardBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "raftkv_forward_batch_writes", Help: "Writes per apply request this node forwarded to the leader.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		digestComparisons: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_digest_comparisons_total",
			Help: "Comparisons of this node's state digests with another node's at a digest-check entry (see docs/operations.md).",
		}),
		divergences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_state_divergences_total",
			Help: "Plugins found with a state (or module) different from another node's at the same log index: each newly raised alarm.",
		}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.collectors = append(m.fsm.Collectors(),
		m.leaderChanges, m.raftRefused, m.rpcRefused, m.forwardBatch, m.digestComparisons, m.divergences,
		gauge("raftkv_state_divergence", "Plugins whose state this node last found to differ from another node's at the same log index (0: none; see docs/operations.md).",
			func() float64 { return float64(len(n.diverged.list())) }),
		gauge("raftkv_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("raftkv_raft_last_index", "Last Raft log index.", func() float64 { return float64(n.raft.LastIndex()) }),
		gauge("raftkv_applied_index", "Index of the last entry applied to the state machine.", func() float64 { return float64(n.fsm.Applied()) }),
		gauge("raftkv_raft_leader", "1 if this node is the leader.", func() float64 { return b2f(n.isLeader()) }),
		gauge("raftkv_fail_stopped", "1 if this node stopped applying the log.", func() float64 { return b2f(n.fsm.Failure() != "") }),
		gauge("raftkv_log_write_failing", "1 while this node's last write to its Raft log or stable store failed (a full disk, an I/O error).", func() float64 {
			_, err := n.watched.WriteError()
			return b2f(err != nil)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "raftkv_log_write_errors_total", Help: "Failed writes to this node's Raft log or stable store.",
		}, func() float64 { return float64(n.watched.Failures()) }),
		raftCollector{n},
	)
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// raftCollector reports Raft's state at scrape time, from one raft.Stats
// call and the latest configuration (neither waits for Raft's main loop).
type raftCollector struct{ n *Node }

var (
	descTerm  = prometheus.NewDesc("raftkv_raft_term", "Current Raft term.", nil, nil)
	descState = prometheus.NewDesc("raftkv_raft_state",
		"1 for this node's Raft state (follower, candidate, leader or shutdown), 0 for the others.", []string{"state"}, nil)
	descLastContact = prometheus.NewDesc("raftkv_raft_last_contact_seconds",
		"Seconds since this node last heard from the leader (0 on the leader; absent if it never has).", nil, nil)
	descVoters    = prometheus.NewDesc("raftkv_raft_voters", "Voters in the latest Raft configuration, this node included if it votes.", nil, nil)
	descNonvoters = prometheus.NewDesc("raftkv_raft_nonvoters", "Non-voters in the latest Raft configuration.", nil, nil)
	descSnapshot  = prometheus.NewDesc("raftkv_raft_last_snapshot_index", "Log index of the last Raft snapshot.", nil, nil)
	descPending   = prometheus.NewDesc("raftkv_raft_fsm_pending", "Committed batches queued for the state machine.", nil, nil)
	raftStates    = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}
)

func (raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descState, descLastContact, descVoters, descNonvoters, descSnapshot, descPending} {
		ch <- d
	}
}

func (c raftCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.n.raft
	stats := r.Stats()
	num := func(key string) float64 {
		v, _ := strconv.ParseUint(stats[key], 10, 64)
		return float64(v)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descTerm, num("term"))
	state := r.State()
	for _, s := range raftStates {
		gauge(descState, b2f(s == state), strings.ToLower(s.String()))
	}
	switch last := r.LastContact(); {
	case state == raft.Leader:
		gauge(descLastContact, 0)
	case !last.IsZero():
		gauge(descLastContact, time.Since(last).Seconds())
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		var voters, nonvoters float64
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			} else {
				nonvoters++
			}
		}
		gauge(descVoters, voters)
		gauge(descNonvoters, nonvoters)
	}
	gauge(descSnapshot, num("last_snapshot_index"))
	gauge(descPending, num("fsm_pending"))
}

// Collectors returns the node's Prometheus collectors: apply latency and
// batch sizes, plugin commands by result code (traps included), plugin
// calls, Raft indexes, term, state, last contact with the leader,
// configuration size, last snapshot, pending batches and leader changes
// (docs/api.md lists them). Register them with a prometheus.Registerer.
//
// Leader changes are counted from the node's start (New registers the Raft
// observer; Close deregisters it).
func (n *Node) Collectors() []prometheus.Collector {
	return n.metrics.collectors
}

// observeLeaderChanges counts LeaderObservations in the observer's filter,
// on Raft's goroutine: nothing is queued and no goroutine reads them.
func (n *Node) observeLeaderChanges() {
	select {
	case <-n.shutdown:
		return
	default:
	}
	obs := raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if _, ok := o.Data.(raft.LeaderObservation); ok {
			n.metrics.leaderChanges.Inc()
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	n.goFunc(func() {
		<-n.shutdown
		n.raft.DeregisterObserver(obs)
	})
}
