package plugin_test

import "golang.org/x/sys/unix"

// threadCPU returns the CPU time the calling OS thread has used: what a
// benchmark compares when other processes load the machine.
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}
