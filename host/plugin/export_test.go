package plugin

// Unmetered makes r load modules without fuel, as they ran before metering
// (with the termination checks of untrusted modules), so that a benchmark
// measures what metering costs.
func Unmetered(r *Runtime) { r.unmetered = true }

// Constants the documentation states (docs_test.go).
const (
	HostCallCost = hostCallCost
	LogRate      = logRate
	LogBurst     = logBurst
)
