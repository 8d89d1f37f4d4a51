package host

import (
	"context"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/internal/buildinfo"
)

// NodeStatus is one node's status as an operator wants to see it across the
// cluster (raftkv status --cluster, the /ui page): Raft state and indexes,
// health, build and plugins.
type NodeStatus struct {
	NodeID       string `json:"node_id" msgpack:"node_id"`
	APIAddress   string `json:"api_address,omitempty" msgpack:"api_address,omitempty"` // Config.APIAddress
	RaftAddress  string `json:"raft_address" msgpack:"raft_address"`
	State        string `json:"state" msgpack:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string `json:"leader" msgpack:"leader"`
	Term         uint64 `json:"term" msgpack:"term"`
	LastIndex    uint64 `json:"last_index" msgpack:"last_index"`
	CommitIndex  uint64 `json:"commit_index" msgpack:"commit_index"`
	AppliedIndex uint64 `json:"applied_index" msgpack:"applied_index"`
	Ready        bool   `json:"ready" msgpack:"ready"`
	NotReady     string `json:"not_ready,omitempty" msgpack:"not_ready,omitempty"` // why it is not ready (Node.Ready)
	Failure      string `json:"failure,omitempty" msgpack:"failure,omitempty"`     // why it stopped applying (fail-stop)
	Degraded     string `json:"degraded,omitempty" msgpack:"degraded,omitempty"`   // why it cannot write its Raft log (Node.Degraded)
	Removed      string `json:"removed,omitempty" msgpack:"removed,omitempty"`     // why it takes no part: its configuration lacks it (Node.Removed)
	Version      string `json:"version" msgpack:"version"`
	Commit       string `json:"commit,omitempty" msgpack:"commit,omitempty"`
	// Keys is the number of keys of every plugin's state; DiskBytes the size
	// of the data directory (Raft log, snapshots, keys; not the compiled
	// code cache).
	// Divergence lists the plugins whose state this node found to differ
	// from another node's (digestcheck.go); LastDigestCheck is the last
	// digest check it took part in.
	Divergence      []Divergence   `json:"divergence,omitempty" msgpack:"divergence,omitempty"`
	LastDigestCheck *DigestCheck   `json:"last_digest_check,omitempty" msgpack:"last_digest_check,omitempty"`
	Keys            int            `json:"keys" msgpack:"keys"`
	DiskBytes       int64          `json:"disk_bytes" msgpack:"disk_bytes"`
	Plugins         []PluginStatus `json:"plugins" msgpack:"plugins"`
	Time            time.Time      `json:"time" msgpack:"time"`
	// Error is set, by the node that asked, when the node did not answer.
	Error string `json:"error,omitempty" msgpack:"error,omitempty"`
}

// PluginStatus is a plugin as one node runs it.
type PluginStatus struct {
	Name    string `json:"name" msgpack:"name"`
	Version string `json:"version" msgpack:"version"`
	Hash    string `json:"hash" msgpack:"hash"`
	Keys    int    `json:"keys" msgpack:"keys"`
	// Digest is the hash of its state at AppliedIndex, when asked for
	// (replicas at the same applied index must agree).
	Digest       string `json:"digest,omitempty" msgpack:"digest,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty" msgpack:"applied_index,omitempty"`
}

// Status returns this node's status; with digests, each plugin's state
// digest too (a hash of the whole state: it costs a pass over every key).
func (n *Node) Status(digests bool) NodeStatus {
	st := n.Stats()
	bi := buildinfo.Get()
	s := NodeStatus{
		NodeID: st.NodeID, APIAddress: n.cfg.APIAddress, RaftAddress: n.Address(), State: st.State, Leader: st.Leader,
		Term: st.Term, LastIndex: st.LastIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		Ready: st.Ready, NotReady: st.NotReady, Failure: st.Failure, Degraded: st.Degraded, Version: bi.Version, Commit: bi.Commit,
		DiskBytes: n.diskUsage(), Plugins: make([]PluginStatus, 0, len(st.Plugins)), Time: time.Now().UTC(),
		Divergence: st.Divergence, LastDigestCheck: n.LastDigestCheck(), Removed: n.Removed(),
	}
	for _, p := range st.Plugins {
		ps := PluginStatus{Name: p.Name, Version: p.Version, Hash: p.Hash, Keys: p.Keys}
		if digests {
			if d, err := n.StateDigest(p.Name); err == nil {
				ps.Digest, ps.AppliedIndex, ps.Keys = d.Digest, d.AppliedIndex, d.Keys
			}
		}
		s.Keys += ps.Keys
		s.Plugins = append(s.Plugins, ps)
	}
	return s
}

// diskUsage is the size of the data directory but the compiled-code cache.
func (n *Node) diskUsage() int64 {
	var total int64
	cache := filepath.Clean(n.cfg.PluginCacheDir)
	filepath.WalkDir(n.cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed meanwhile (a compacted segment)
		}
		if d.IsDir() {
			if filepath.Clean(path) == cache || d.Name() == "wasm-cache" {
				return filepath.SkipDir
			}
			return nil
		}
		if fi, err := d.Info(); err == nil {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// ClusterStatus returns every member's status, this node's included, in
// the configuration's order, asking the others over the node-to-node
// transport (each within 2 s); a member that does not answer has Error set.
func (n *Node) ClusterStatus(ctx context.Context, digests bool) ([]NodeStatus, error) {
	members, err := n.configuration()
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, len(members))
	body, err := (&peerrpc.StatusBody{Digests: digests}).Marshal()
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for i, m := range members {
		if m.id == n.cfg.NodeID {
			out[i] = n.Status(digests)
			continue
		}
		out[i] = NodeStatus{NodeID: m.id, RaftAddress: m.addr}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var s NodeStatus
			if err := n.callMember(cctx, m.addr, peerrpc.Status.Name, body, &s); err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i] = s
		})
	}
	wg.Wait()
	return out, nil
}

type configured struct{ id, addr string }

// configuration lists the members of the latest configuration.
func (n *Node) configuration() ([]configured, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, mapRaftErr(err)
	}
	var out []configured
	for _, s := range cf.Configuration().Servers {
		out = append(out, configured{string(s.ID), string(s.Address)})
	}
	return out, nil
}
