package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
)

// phases reports an operation made of steps on w (standard error), one line
// when a step starts and one with its outcome and duration when it ends:
//
//	restore: [2/3] verify and install on the leader…
//	restore: [2/3] verify and install on the leader: done in 1.1s
//
// Its methods may be called from a request's Progress callback, which runs
// on the HTTP transport's goroutine.
type phases struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	total   int
	n       int
	name    string
	started time.Time
}

func newPhases(w io.Writer, label string, total int) *phases {
	return &phases{w: w, label: label, total: total}
}

// step ends the current step and starts the next.
func (p *phases) step(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked("")
	p.n++
	p.name, p.started = name, time.Now()
	fmt.Fprintf(p.w, "%s…\n", p.head())
}

// end ends the current step, if any, with an outcome ("" for done).
func (p *phases) end(outcome string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(outcome)
}

func (p *phases) endLocked(outcome string) {
	if p.name == "" {
		return
	}
	if outcome == "" {
		outcome = "done"
	}
	fmt.Fprintf(p.w, "%s: %s in %s\n", p.head(), outcome, time.Since(p.started).Round(time.Millisecond))
	p.name = ""
}

func (p *phases) head() string { return fmt.Sprintf("%s: [%d/%d] %s", p.label, p.n, p.total, p.name) }

// waitEveryNode polls every member's status (GET /v1/status/cluster) until
// done says each is done, printing each member as it gets there and a bar
// of how many did, and returns the members that did not within timeout.
// A member unreachable for unreachableWait in a row is not waited for
// (it is reported, and returned with the others): it gets there when it
// is back, and a member that is down would hold the command for the whole
// timeout.
func waitEveryNode(ctx context.Context, c *client, w io.Writer, label string, timeout time.Duration, done func(nodeStatus) bool) (pending []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reported := map[string]bool{}   // got there, printed
	unreachable := map[string]int{} // 1: printed unreachable, 2: and given up on
	downSince := map[string]time.Time{}
	finished := 0
	for {
		nodes, err := clusterStatus(ctx, c, false)
		if err != nil {
			if ctx.Err() != nil {
				return pending, nil
			}
			return nil, err
		}
		pending = pending[:0]
		waiting := false // for a member not given up on
		for _, n := range nodes {
			if n.Error == "" {
				delete(downSince, n.NodeID) // unreachable in a row only
			}
			switch {
			case reported[n.NodeID]: // got there before
			case n.Error != "":
				pending = append(pending, n.NodeID)
				if _, ok := downSince[n.NodeID]; !ok {
					downSince[n.NodeID] = time.Now()
				}
				if unreachable[n.NodeID] == 0 {
					fmt.Fprintf(w, "%s:   %s unreachable: %s\n", label, n.NodeID, n.Error)
					unreachable[n.NodeID] = 1
				}
				if time.Since(downSince[n.NodeID]) < unreachableWait {
					waiting = true
				} else if unreachable[n.NodeID] == 1 {
					fmt.Fprintf(w, "%s:   %s unreachable for %v: not waiting for it (it gets there when it is back)\n", label, n.NodeID, unreachableWait)
					unreachable[n.NodeID] = 2
				}
			case done(n):
				reported[n.NodeID] = true
				finished++
				fmt.Fprintf(w, "%s:   %s %d/%d %s at applied index %d\n", label, bar(finished, len(nodes)), finished, len(nodes), n.NodeID, n.AppliedIndex)
			default:
				pending = append(pending, n.NodeID)
				waiting = true
			}
		}
		if len(pending) == 0 {
			return nil, nil
		}
		if !waiting {
			return pending, nil
		}
		select {
		case <-ctx.Done():
			return pending, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unreachableWait is how long waitEveryNode waits for a member it cannot
// reach.
const unreachableWait = 10 * time.Second

// bar is a progress bar of n out of total: "[########------------]".
func bar(n, total int) string {
	const width = 20
	if total <= 0 {
		return ""
	}
	k := min(n, total) * width / total
	return "[" + strings.Repeat("#", k) + strings.Repeat("-", width-k) + "]"
}

// installedEverywhere waits (up to 2 minutes) until every member has applied
// the leader's applied index, as it is now: after a restore, every member
// installed the backup. Each member is reported as it gets there.
func installedEverywhere(ctx context.Context, c *client, w io.Writer, label string) error {
	nodes, err := clusterStatus(ctx, c, false)
	if err != nil {
		return err
	}
	var target uint64
	for _, n := range nodes {
		if n.State == "Leader" {
			target = n.AppliedIndex
		}
	}
	pending, err := waitEveryNode(ctx, c, w, label, 2*time.Minute, func(n nodeStatus) bool { return n.AppliedIndex >= target })
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("%s not there yet", strings.Join(pending, ", "))
	}
	return nil
}

// deployWithPhases deploys a module, reporting three steps: the upload, the
// leader's validation, compilation and replication (until it answers), then
// every member activating the module (each compiles it when it applies the
// deploy entry).
func deployWithPhases(ctx context.Context, c *client, name string, wasm []byte, q url.Values, h http.Header, w io.Writer) (kvclient.PluginInfo, error) {
	var info kvclient.PluginInfo
	ph := newPhases(w, "deploy "+name, 3)
	ph.step(fmt.Sprintf("upload %s to the leader", formatBytes(int64(len(wasm)))))
	uploaded := false
	req := kvclient.Request{Method: http.MethodPut, Path: pluginPath(name), Query: q, Header: h, Body: wasm, ContentType: "application/wasm",
		Write: true, Leader: true, Idempotent: true, Progress: func(sent, total int64) {
			if sent >= total && !uploaded { // once, even when a retry sends it again
				uploaded = true
				ph.step("validate, compile and replicate on the leader")
			}
		}}
	cctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.api.Do(cctx, req)
	if err != nil {
		ph.end("failed")
		return info, err
	}
	defer resp.Body.Close()
	if err := decodeBody(resp, &info); err != nil {
		ph.end("failed")
		return info, err
	}
	ph.end("")
	ph.step("compile and activate on every member")
	pending, err := waitEveryNode(ctx, c, w, "deploy "+name, 2*time.Minute, func(n nodeStatus) bool {
		for _, p := range n.Plugins {
			if p.Name == name && p.Hash == info.Hash {
				return true
			}
		}
		return false
	})
	switch {
	case err != nil:
		ph.end("not confirmed: " + err.Error())
	case len(pending) > 0:
		ph.end("not confirmed: " + strings.Join(pending, ", ") + " not there yet")
	default:
		ph.end("")
	}
	return info, nil
}
