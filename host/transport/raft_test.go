package transport

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM records every applied command.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return len(f.entries)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(slices.Clone(f.entries)), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []string
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

type raftNode struct {
	r   *raft.Raft
	fsm *listFSM
}

// TestRaftCluster runs hashicorp/raft over the SSH stream layer: three nodes
// elect a leader and replicate entries; when the leader stops, the other two
// elect a new one and keep committing.
func TestRaftCluster(t *testing.T) {
	noLeaks(t)
	ids := []string{"n1", "n2", "n3"}
	c := newCluster(t, nil, ids...)
	var servers []raft.Server
	for _, id := range ids {
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(c.addr(id))})
	}
	nodes := map[string]*raftNode{}
	for _, id := range ids {
		logger := hclog.New(&hclog.LoggerOptions{Name: id, Output: &logBuffer{t: t}, Level: hclog.Warn})
		nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  c.nodes[id].tr,
			MaxPool: 3,
			Timeout: 2 * time.Second,
			Logger:  logger,
		})
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(id)
		conf.HeartbeatTimeout = 300 * time.Millisecond
		conf.ElectionTimeout = 300 * time.Millisecond
		conf.LeaderLeaseTimeout = 150 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		conf.Logger = logger
		store := raft.NewInmemStore()
		fsm := &listFSM{}
		r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), nt)
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = &raftNode{r: r, fsm: fsm}
		t.Cleanup(func() { r.Shutdown().Error() })
		if nt.LocalAddr() != raft.ServerAddress(c.addr(id)) {
			t.Fatalf("raft sees local address %s, want %s", nt.LocalAddr(), c.addr(id))
		}
	}
	if err := nodes["n1"].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}

	leader := waitLeader(t, nodes)
	var want []string
	apply := func(leader string, n int) {
		t.Helper()
		futures := make([]raft.ApplyFuture, n)
		for i := range futures {
			cmd := fmt.Sprintf("cmd-%d", len(want))
			want = append(want, cmd)
			futures[i] = nodes[leader].r.Apply([]byte(cmd), 5*time.Second)
		}
		for _, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatalf("apply on %s: %v", leader, err)
			}
		}
	}
	converged := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			poll(t, id+" to apply every entry", func() bool { return slices.Equal(nodes[id].fsm.list(), want) })
		}
	}
	apply(leader, 200)
	converged(ids...)

	// Stop the leader (raft closes its NetworkTransport and with it our
	// Transport); the two others carry on.
	if err := nodes[leader].r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	delete(nodes, leader)
	newLeader := waitLeader(t, nodes)
	if newLeader == leader {
		t.Fatal("the stopped node is still leader")
	}
	apply(newLeader, 50)
	var rest []string
	for id := range nodes {
		rest = append(rest, id)
	}
	converged(rest...)
}

func waitLeader(t *testing.T, nodes map[string]*raftNode) string {
	t.Helper()
	var leader string
	poll(t, "a leader", func() bool {
		for id, n := range nodes {
			if n.r.State() == raft.Leader {
				leader = id
				return true
			}
		}
		return false
	})
	return leader
}
