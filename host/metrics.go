package host

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/abi"
)

// metrics are the node's Prometheus instruments (see Node.Collectors).
type metrics struct {
	applyBatch  prometheus.Histogram
	batchSize   prometheus.Histogram
	commands    *prometheus.CounterVec // by plugin and result code
	pluginCalls prometheus.Counter
	stateGauges *prometheus.GaugeFunc
	collectors  []prometheus.Collector
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		applyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "raftkv_fsm_apply_batch_seconds", Help: "Time to apply one committed batch of log entries.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "raftkv_fsm_batch_entries", Help: "Log entries per applied batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftkv_plugin_commands_total",
			Help: "Plugin commands applied, by plugin and result code: the ABI's named codes (trap counts plugin traps), \"other\" for the plugin-defined ones.",
		}, []string{"plugin", "code"}),
		pluginCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_plugin_apply_calls_total", Help: "Guest calls made to apply runs of commands.",
		}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.collectors = []prometheus.Collector{
		m.applyBatch, m.batchSize, m.commands, m.pluginCalls,
		gauge("raftkv_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("raftkv_raft_last_index", "Last Raft log index.", func() float64 { return float64(n.raft.LastIndex()) }),
		gauge("raftkv_applied_index", "Index of the last entry applied to the state machine.", func() float64 { return float64(n.fsm.applied.Load()) }),
		gauge("raftkv_raft_leader", "1 if this node is the leader.", func() float64 { return b2f(n.isLeader()) }),
		gauge("raftkv_fail_stopped", "1 if this node stopped applying the log.", func() float64 { return b2f(n.fsm.failed.Load() != nil) }),
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// codeOther stands for every code that is not one of the ABI's named codes.
const codeOther = abi.Code(^uint32(0))

// labelled returns the code whose label counts a result of code c: c itself
// for the ABI's named codes, codeOther for the plugin-defined ones (a plugin
// chooses its codes freely, and every label value is a time series).
func labelled(c abi.Code) abi.Code {
	switch c {
	case abi.CodeOK, abi.CodeBadRequest, abi.CodeNotFound, abi.CodeConflict, abi.CodeTooLarge,
		abi.CodeInternal, abi.CodeTrap, abi.CodeNoResult, abi.CodeReadOnly:
		return c
	}
	return codeOther
}

// observeResults counts a run's results by code label: one labelled update
// per distinct label, not one per command (this is the apply hot path).
func (m *metrics) observeResults(plugin string, results []abi.Result) {
	m.pluginCalls.Inc()
	for len(results) > 0 {
		code, n := labelled(results[0].Code), 0
		rest := results[:0:0]
		for _, r := range results {
			if labelled(r.Code) == code {
				n++
			} else {
				rest = append(rest, r)
			}
		}
		label := "other"
		if code != codeOther {
			label = code.String()
		}
		m.commands.WithLabelValues(plugin, label).Add(float64(n))
		results = rest
	}
}

// Collectors returns the node's Prometheus collectors: apply latency and
// batch sizes, plugin commands by result code (traps included), plugin calls
// and Raft indexes. Register them with a prometheus.Registerer.
func (n *Node) Collectors() []prometheus.Collector { return n.metrics.collectors }
