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

// NoInputBuffer makes in ignore the input buffer its module offered, until
// it restarts: every input goes through raftkv_alloc, as for a module built
// before ABI v1.2 (a benchmark measures what the buffer saves).
func NoInputBuffer(in *Instance) { in.inCap = 0 }
