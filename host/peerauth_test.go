package host_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/evilpeer"
)

// memberKey returns the key in m's data directory.
func memberKey(t *testing.T, m *cluster.Member) ssh.Signer {
	t.Helper()
	key, err := transport.LoadOrCreateKey(m.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// attacker returns an evil peer that logs in to target as node as, with key.
func attacker(t *testing.T, key ssh.Signer, as string, target *cluster.Member) *evilpeer.Peer {
	t.Helper()
	p, err := evilpeer.New(evilpeer.Config{
		As: as, Key: key, BindIP: "127.0.4.1",
		Target: target.Proxy.Addr(), TargetID: target.ID, TargetKey: target.Node.PublicKey(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitValue waits until n's local state has k = want.
func waitValue(t *testing.T, n *host.Node, k, want string) {
	t.Helper()
	cluster.Poll(t, 10*time.Second, func() bool {
		v, err := get(t, n, k, host.Stale)
		return err == nil && v == want
	}, "%s: %s never became %q", n.ID(), k, want)
}

// waitAdmitted waits until target accepts p's SSH connection (its trust
// list has p's key): a ping then gets an answer, or a handler's error.
func waitAdmitted(t *testing.T, p *evilpeer.Peer) {
	t.Helper()
	cluster.Poll(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := p.Call(ctx, "ping", []byte{0x80})
		var re *transport.RemoteError
		return err == nil || errors.As(err, &re)
	}, "the target does not accept the key")
}

// lastLog returns a node's last log index and term.
func lastLog(t *testing.T, n *host.Node) (index, term uint64) {
	t.Helper()
	s := n.Stats()
	term, err := strconv.ParseUint(s.Raft["last_log_term"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return s.LastIndex, term
}

// TestImpersonatedLeaderRefused plays a member's key posing as the leader
// (issue 10, attack 1): n-follower's key logs in under its own name, as the
// SSH layer requires, then sends Raft RPCs whose header names the leader,
// with a term far ahead. Each is refused (the connection closes before Raft
// sees it), the target's term does not move, and no node applies the forged
// command.
func TestImpersonatedLeaderRefused(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	leader := c.Leader()
	fs := c.Followers()
	thief, target := fs[0], fs[1]
	mustSet(t, leader.Node, "before", "1")
	waitValue(t, target.Node, "before", "1")

	evilTerm := target.Node.Stats().Term + 1000
	p := attacker(t, memberKey(t, thief), thief.ID, target)
	hdr := evilpeer.Header(leader.ID, leader.Proxy.Addr())
	forged := host.CommandEntry("kv", cmd(t, map[string]any{"op": "SET", "key": "evil", "value": "forged"}))

	t.Run("InstallSnapshot", func(t *testing.T) {
		last, _ := lastLog(t, target.Node)
		data := []byte("not a snapshot")
		_, err := p.InstallSnapshot(&raft.InstallSnapshotRequest{
			RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: evilTerm,
			LastLogIndex: last + 100, LastLogTerm: evilTerm, Size: int64(len(data)),
			Configuration: raft.EncodeConfiguration(configOf(c)), ConfigurationIndex: last,
		}, bytes.NewReader(data))
		if err == nil {
			t.Errorf("forged InstallSnapshot as %s was answered", leader.ID)
		}
		if got := target.Node.Stats().Term; got >= evilTerm {
			t.Errorf("%s took the forged term: %d", target.ID, got)
		}
	})
	t.Run("RequestVote", func(t *testing.T) {
		last, lastTerm := lastLog(t, target.Node)
		_, err := p.RequestVote(&raft.RequestVoteRequest{
			RPCHeader: hdr, Term: evilTerm, LastLogIndex: last + 1000, LastLogTerm: lastTerm + 1000,
		})
		if err == nil {
			t.Errorf("forged RequestVote as %s was answered", leader.ID)
		}
		if got := target.Node.Stats().Term; got >= evilTerm {
			t.Errorf("%s took the forged term: %d", target.ID, got)
		}
	})
	t.Run("AppendEntries", func(t *testing.T) {
		last, lastTerm := lastLog(t, target.Node)
		_, err := p.AppendEntries(&raft.AppendEntriesRequest{
			RPCHeader: hdr, Term: evilTerm, PrevLogEntry: last, PrevLogTerm: lastTerm,
			Entries:           []*raft.Log{{Index: last + 1, Term: evilTerm, Type: raft.LogCommand, Data: forged}},
			LeaderCommitIndex: last + 1,
		})
		if err == nil {
			t.Errorf("forged AppendEntries as %s was answered", leader.ID)
		}
		if got := target.Node.Stats().Term; got >= evilTerm {
			t.Errorf("%s took the forged term: %d", target.ID, got)
		}
	})
	if !c.Logged("raftauth: refused", "peer="+thief.ID, "claimed_id="+leader.ID) {
		t.Errorf("no refusal of %s posing as %s logged", thief.ID, leader.ID)
	}
	// A write after the attack reaches every node; the forged one none.
	mustSet(t, c.Leader().Node, "after", "1")
	for _, m := range c.Members {
		waitValue(t, m.Node, "after", "1")
		if v, err := get(t, m.Node, "evil", host.Stale); !errors.Is(err, notFound) {
			t.Errorf("%s: evil = %q, %v; want not found", m.ID, v, err)
		}
	}
}

// configOf returns the cluster's configuration, every member a voter.
func configOf(c *cluster.Cluster) raft.Configuration {
	var cf raft.Configuration
	for _, m := range c.Members {
		cf.Servers = append(cf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.Proxy.Addr())})
	}
	return cf
}

// TestMalformedSnapshotRefused: hashicorp/raft panics on an InstallSnapshot
// whose configuration does not decode. A voter sending one under its own
// name is refused, and the target keeps running.
func TestMalformedSnapshotRefused(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	fs := c.Followers()
	sender, target := fs[0], fs[1]
	p := attacker(t, memberKey(t, sender), sender.ID, target)
	last, _ := lastLog(t, target.Node)
	term := target.Node.Stats().Term
	data := []byte("not a snapshot")
	_, err := p.InstallSnapshot(&raft.InstallSnapshotRequest{
		RPCHeader: evilpeer.Header(sender.ID, sender.Proxy.Addr()), SnapshotVersion: raft.SnapshotVersionMax,
		Term: term, LastLogIndex: last + 100, LastLogTerm: term, Size: int64(len(data)),
	}, bytes.NewReader(data))
	if err == nil {
		t.Errorf("InstallSnapshot without a configuration was answered")
	}
	if !c.Logged("raftauth: refused", "peer="+sender.ID, "configuration") {
		t.Errorf("no refusal logged")
	}
	mustSet(t, c.Leader().Node, "after", "1")
	waitValue(t, target.Node, "after", "1")
}

// TestNonMemberRaftRefused: a key trusted for a node that never joined may
// not act as a leader under its own name either.
func TestNonMemberRaftRefused(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	leader := c.Leader()
	target := c.Followers()[0]
	key, err := transport.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := leader.Node.Trust(ctx, "", trust.TrustLine(key.PublicKey(), "ghost")); err != nil {
		t.Fatal(err)
	}
	p := attacker(t, key, "ghost", target)
	waitAdmitted(t, p)

	evilTerm := target.Node.Stats().Term + 1000
	last, lastTerm := lastLog(t, target.Node)
	forged := host.CommandEntry("kv", cmd(t, map[string]any{"op": "SET", "key": "evil", "value": "ghost"}))
	_, err = p.AppendEntries(&raft.AppendEntriesRequest{
		RPCHeader: evilpeer.Header("ghost", "127.0.4.1:7000"), Term: evilTerm, PrevLogEntry: last, PrevLogTerm: lastTerm,
		Entries:           []*raft.Log{{Index: last + 1, Term: evilTerm, Type: raft.LogCommand, Data: forged}},
		LeaderCommitIndex: last + 1,
	})
	if err == nil {
		t.Errorf("AppendEntries from non-member ghost was answered")
	}
	if got := target.Node.Stats().Term; got >= evilTerm {
		t.Errorf("%s took ghost's term: %d", target.ID, got)
	}
	if !c.Logged("raftauth: refused", "peer=ghost", "not in the configuration") {
		t.Errorf("no refusal of ghost logged")
	}
	mustSet(t, c.Leader().Node, "after", "1")
	waitValue(t, target.Node, "after", "1")
	if v, err := get(t, target.Node, "evil", host.Stale); !errors.Is(err, notFound) {
		t.Errorf("evil = %q, %v; want not found", v, err)
	}
}

// TestMalformedConfigurationEntryRefused: hashicorp/raft panics on a
// configuration log entry it cannot decode (DecodeConfiguration), the moment
// a follower appends it, and again at every restart once it is stored. A
// voter may send AppendEntries under its own name (it could be the leader),
// so the binding alone does not stop it: raftauth decodes every
// configuration entry as Raft will, and refuses the request when one does
// not decode, or is a kind raftkv never writes.
func TestMalformedConfigurationEntryRefused(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	fs := c.Followers()
	sender, target := fs[0], fs[1]
	mustSet(t, c.Leader().Node, "before", "1")
	waitValue(t, target.Node, "before", "1")
	p := attacker(t, memberKey(t, sender), sender.ID, target)
	for _, e := range []struct {
		name, reason string
		typ          raft.LogType
		data         []byte
	}{
		{"configuration not MsgPack", "does not decode", raft.LogConfiguration, []byte{0xc1, 0xc1}},
		{"configuration of the wrong shape", "does not decode", raft.LogConfiguration, []byte{0x93, 1, 2, 3}},
		{"configuration without a voter", "no voter", raft.LogConfiguration, raft.EncodeConfiguration(raft.Configuration{})},
		{"deprecated add-peer", "LogAddPeerDeprecated", raft.LogAddPeerDeprecated, []byte{0x91, 0xa1, 'x'}},
		{"unknown entry type", "unknown type", 99, nil}, // Raft panics when it commits
	} {
		last, lastTerm := lastLog(t, target.Node)
		term := target.Node.Stats().Term
		_, err := p.AppendEntries(&raft.AppendEntriesRequest{
			RPCHeader: evilpeer.Header(sender.ID, sender.Proxy.Addr()), Term: term,
			PrevLogEntry: last, PrevLogTerm: lastTerm,
			Entries: []*raft.Log{
				{Index: last + 1, Term: term, Type: raft.LogNoop},
				{Index: last + 2, Term: term, Type: e.typ, Data: e.data},
			},
			LeaderCommitIndex: last + 2,
		})
		if err == nil {
			t.Errorf("%s: AppendEntries was answered", e.name)
		}
		if !c.Logged("raftauth: refused", "peer="+sender.ID, "rpc=AppendEntries", e.reason) {
			t.Errorf("%s: no refusal logged", e.name)
		}
	}
	// The target keeps serving and following the real leader.
	mustSet(t, c.Leader().Node, "after", "1")
	for _, m := range c.Members {
		waitValue(t, m.Node, "after", "1")
	}
}

// TestPendingJoinHearsOnlyTheVoters: a node waiting to be added has no
// configuration to check a sender against. Told the cluster's voters
// (ExpectLeaders, from the trust answer, as serve --join does), it refuses
// Raft RPCs from any other trusted key: here a trusted non-member feeding it
// a log of its own. The real leader still adds it.
func TestPendingJoinHearsOnlyTheVoters(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	leader := c.Leader()
	pending := c.AddPending("n4")
	key, err := transport.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := leader.Node.Trust(ctx, "", trust.TrustLine(key.PublicKey(), "ghost")); err != nil {
		t.Fatal(err)
	}
	lines, err := leader.Node.Trust(ctx, "", pending.Node.TrustLine())
	if err != nil {
		t.Fatal(err)
	}
	pending.Node.ExpectLeaders(leader.Node.Voters())
	if err := pending.Node.AcceptTrust(lines); err != nil { // ghost's key included
		t.Fatal(err)
	}
	p := attacker(t, key, "ghost", pending)
	waitAdmitted(t, p)

	forged := host.CommandEntry("kv", cmd(t, map[string]any{"op": "SET", "key": "evil", "value": "ghost"}))
	_, err = p.AppendEntries(&raft.AppendEntriesRequest{
		RPCHeader: evilpeer.Header("ghost", "127.0.4.1:7000"), Term: 50,
		Entries:           []*raft.Log{{Index: 1, Term: 50, Type: raft.LogCommand, Data: forged}},
		LeaderCommitIndex: 1,
	})
	if err == nil {
		t.Errorf("the pending node answered an AppendEntries from the trusted non-member ghost")
	}
	if got := pending.Node.Stats().Term; got >= 50 {
		t.Errorf("the pending node took ghost's term: %d", got)
	}
	if !c.Logged("raftauth: refused", "peer=ghost", "not one of the voters this node's join named") {
		t.Errorf("no refusal of ghost logged")
	}

	if _, err := leader.Node.Join(ctx, host.JoinRequest{NodeID: "n4", Address: pending.Proxy.Addr()}); err != nil {
		t.Fatalf("the leader could not add the pending node: %v", err)
	}
	mustSet(t, c.Leader().Node, "after", "1")
	waitValue(t, pending.Node, "after", "1")
	if v, err := get(t, pending.Node, "evil", host.Stale); !errors.Is(err, notFound) {
		t.Errorf("evil = %q, %v; want not found", v, err)
	}
}
