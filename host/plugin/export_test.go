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

// InputBuffer is the guest input buffer the live instance offered
// (raftkv_input_buffer): capacity 0 if none.
func (in *Instance) InputBuffer() (ptr, capacity uint32) { return in.inPtr, in.inCap }
