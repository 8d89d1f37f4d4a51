package fsm

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/raftkv/raftkv/abi"
)

// Metrics are the state machine's Prometheus instruments (package host
// registers them with the node's: see Collectors). A nil *Metrics counts
// nothing.
type Metrics struct {
	applyBatch  prometheus.Histogram
	batchSize   prometheus.Histogram
	commands    *prometheus.CounterVec // by plugin and result code
	pluginCalls prometheus.Counter
	// idempotentReplays counts commands answered from the idempotency
	// table instead of being applied (sessions.go).
	idempotentReplays prometheus.Counter
}

// NewMetrics returns the state machine's instruments.
func NewMetrics() *Metrics {
	return &Metrics{
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
		idempotentReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftkv_idempotent_replays_total",
			Help: "Commands not applied because their idempotency key had a result already: they got that result.",
		}),
	}
}

// Collectors returns the instruments, to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.applyBatch, m.batchSize, m.commands, m.pluginCalls, m.idempotentReplays}
}

// codeOther stands for every code that is not one of the ABI's named codes.
const codeOther = abi.Code(^uint32(0))

// labelled returns the code whose label counts a result of code c: c itself
// for the ABI's named codes, codeOther for the plugin-defined ones (a plugin
// chooses its codes freely, and every label value is a time series).
func labelled(c abi.Code) abi.Code {
	switch c {
	case abi.CodeOK, abi.CodeBadRequest, abi.CodeNotFound, abi.CodeConflict, abi.CodeTooLarge,
		abi.CodeInternal, abi.CodeTrap, abi.CodeNoResult, abi.CodeReadOnly, abi.CodeOutOfFuel:
		return c
	}
	return codeOther
}

// observeResults counts a run's results by code label: one labelled update
// per distinct label, not one per command (this is the apply hot path).
func (m *Metrics) observeResults(plugin string, results []abi.Result) {
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
