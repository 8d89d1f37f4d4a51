package main

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// processes are the child processes started, stopped together at the end.
type processes struct {
	mu    sync.Mutex
	procs []*exec.Cmd
}

// start starts cmd with its output appended to the file logPath.
func (p *processes) start(cmd *exec.Cmd, logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own descriptor
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.procs = append(p.procs, cmd)
	p.mu.Unlock()
	return nil
}

// stopAll sends SIGTERM to every process and waits for it, with SIGKILL
// after 30 s.
func (p *processes) stopAll(logf func(string, ...any)) {
	p.mu.Lock()
	procs := p.procs
	p.procs = nil
	p.mu.Unlock()
	for _, c := range procs {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range procs {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			logf("pid %d did not stop within 30s of SIGTERM; killing it", c.Process.Pid)
			_ = c.Process.Kill()
			<-done
		}
	}
}
