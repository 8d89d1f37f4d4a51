package host_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/cluster"
)

// members returns id -> address of the members n lists.
func members(t *testing.T, n *host.Node) map[string]host.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := n.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]host.Member{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

// TestJoinCannotMoveLiveMember replays issue 10's attack 3: joins naming
// live members at dead addresses (as GET /join?peerID=n2&peerAddress=…
// sends) are refused, and the cluster keeps its members and serves.
func TestJoinCannotMoveLiveMember(t *testing.T) { eachNetwork(t, testJoinCannotMoveLiveMember) }

func testJoinCannotMoveLiveMember(t *testing.T, network string) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Network: network})
	leader := c.Leader()
	before := members(t, leader.Node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, f := range c.Followers() {
		dead := fmt.Sprintf("127.0.4.%d:9", 20+i)
		_, err := f.Node.Join(ctx, host.JoinRequest{NodeID: f.ID, Address: dead})
		if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "answers") {
			t.Errorf("moving %s to %s: %v, want a refusal", f.ID, dead, err)
		}
	}
	// Into another member's address.
	fs := c.Followers()
	if _, err := leader.Node.Join(ctx, host.JoinRequest{NodeID: fs[0].ID, Address: fs[1].Addr()}); !errors.Is(err, host.ErrInvalid) {
		t.Errorf("moving %s to %s's address: %v, want a refusal", fs[0].ID, fs[1].ID, err)
	}
	after := members(t, c.Leader().Node)
	for id, m := range before {
		if after[id].Address != m.Address || after[id].Suffrage != m.Suffrage {
			t.Errorf("%s: %+v, was %+v", id, after[id], m)
		}
	}
	mustSet(t, c.Leader().Node, "k", "v")
	for _, m := range c.Members {
		waitValue(t, m.Node, "k", "v")
	}
}

// TestJoinAtAnotherSpellingRefused: a member joined again at another
// spelling of its address (the port with a leading zero: the same TCP
// endpoint, another string) is refused, because its Raft RPCs carry the
// address it advertises, and members refuse a vote request whose address
// is not the configuration's. The attack on the seed's GET /join that
// found it moved two followers that way (200 ok); once the leader
// stopped, neither could be elected nor get a vote, and the cluster had
// no leader. TCP only: the in-memory network has no second spelling.
func TestJoinAtAnotherSpellingRefused(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	before := members(t, c.Leader().Node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range c.Followers() {
		ip, port, err := net.SplitHostPort(f.Addr())
		if err != nil {
			t.Fatal(err)
		}
		respelled := net.JoinHostPort(ip, "0"+port)
		_, err = c.Leader().Node.Join(ctx, host.JoinRequest{NodeID: f.ID, Address: respelled})
		if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "advertises its Raft address as "+f.Addr()) {
			t.Errorf("joining %s at %s: %v, want a refusal naming %s", f.ID, respelled, err, f.Addr())
		}
	}
	after := members(t, c.Leader().Node)
	for id, m := range before {
		if after[id].Address != m.Address || after[id].Suffrage != m.Suffrage {
			t.Errorf("%s: %+v, was %+v", id, after[id], m)
		}
	}
}

// TestJoinRefusesUnreachableVoters: three "ghost" voters whose keys are
// trusted but whom nobody runs would outvote the cluster; each join is
// refused.
func TestJoinRefusesUnreachableVoters(t *testing.T) { eachNetwork(t, testJoinRefusesUnreachableVoters) }

func testJoinRefusesUnreachableVoters(t *testing.T, network string) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Network: network})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		key, err := transport.LoadOrCreateKey(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("ghost%d", i)
		_, err = c.Leader().Node.Join(ctx, host.JoinRequest{
			NodeID: id, Address: fmt.Sprintf("127.0.4.%d:9", 30+i), PublicKey: trust.TrustLine(key.PublicKey(), id),
		})
		if !errors.Is(err, host.ErrInvalid) {
			t.Errorf("joining %s: %v, want a refusal", id, err)
		}
	}
	if ms := members(t, c.Leader().Node); len(ms) != 3 {
		t.Errorf("members: %v", ms)
	}
	mustSet(t, c.Leader().Node, "k", "v")
}

// TestDuplicateNodeIDRefused: a second node started with a member's node ID
// (its own key and data directory) cannot get its key trusted nor take the
// member's place; the member keeps serving.
func TestDuplicateNodeIDRefused(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	victim := c.Followers()[0]
	cfg := cluster.FastConfig()
	cfg.NodeID, cfg.DataDir = victim.ID, filepath.Join(t.TempDir(), "dup")
	ln, err := net.Listen("tcp", "127.0.4.40:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RaftAddr = ln.Addr().String()
	ln.Close()
	cfg.AdvertiseAddr = ""
	cfg.PluginCacheDir = cluster.SharedCache(t)
	dup, err := host.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// As raftkv serve --join does: trust, then join.
	_, err = c.Leader().Node.Trust(ctx, "", dup.TrustLine())
	if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "already a member") {
		t.Errorf("trusting a second key for %s: %v, want a refusal saying so", victim.ID, err)
	}
	_, err = c.Leader().Node.Join(ctx, host.JoinRequest{NodeID: victim.ID, Address: dup.Address(), PublicKey: dup.TrustLine()})
	if !errors.Is(err, host.ErrInvalid) {
		t.Errorf("joining a second %s: %v, want a refusal", victim.ID, err)
	}
	if m := members(t, c.Leader().Node)[victim.ID]; m.Address != victim.Proxy.Addr() {
		t.Errorf("%s is now %+v", victim.ID, m)
	}
	mustSet(t, victim.Node, "still", "serving")
	waitValue(t, victim.Node, "still", "serving")
}

// TestRemoveRefusedWithoutQuorum: with one of three voters down, removing
// another would leave one reachable voter of two: refused.
func TestRemoveRefusedWithoutQuorum(t *testing.T) { eachNetwork(t, testRemoveRefusedWithoutQuorum) }

func testRemoveRefusedWithoutQuorum(t *testing.T, network string) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Network: network})
	fs := c.Followers()
	c.Stop(fs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Leader().Node.Remove(ctx, fs[1].ID)
	if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "quorum") {
		t.Errorf("removing %s with %s down: %v, want a refusal", fs[1].ID, fs[0].ID, err)
	}
	// Removing the one that is down is fine.
	if err := c.Leader().Node.Remove(ctx, fs[0].ID); err != nil {
		t.Errorf("removing the stopped %s: %v", fs[0].ID, err)
	}
}

// TestJoinPromotesNonVoter: a new member joins as a non-voter and is a
// voter when Join returns.
func TestJoinPromotesNonVoter(t *testing.T) { eachNetwork(t, testJoinPromotesNonVoter) }

func testJoinPromotesNonVoter(t *testing.T, network string) {
	c := cluster.Start(t, cluster.Options{Nodes: 2, Network: network})
	m := c.Add("n3", false)
	if got := members(t, c.Leader().Node)[m.ID].Suffrage; got != "voter" {
		t.Errorf("n3 is a %s", got)
	}
	if !c.Logged("member added as non-voter", "id=n3") || !c.Logged("member promoted to voter", "id=n3") {
		t.Errorf("n3 was not added as a non-voter and then promoted")
	}
}

// TestRestartAtAnotherAddressSaysWhy: a member restarted at another Raft
// address than the configuration's says so in an error of its own log (the
// members refuse its votes, and only their logs said why), and a join at
// the new address, as the message advises, brings it back as a voter.
func TestRestartAtAnotherAddressSaysWhy(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	f := c.Followers()[0]
	old := f.Addr()
	c.Stop(f)
	var moved string
	f.Reconfigure(func(cfg *host.Config) { cfg.AdvertiseAddr, moved = "", cfg.RaftAddr }) // no proxy
	c.Restart(f)
	if !c.Logged("advertises another Raft address than the cluster's configuration", "configured_address="+old, "advertised_address="+moved) {
		t.Errorf("%s restarted at %s, configured at %s, and logged no error saying so", f.ID, moved, old)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Leader().Node.Join(ctx, host.JoinRequest{NodeID: f.ID, Address: moved}); err != nil {
		t.Fatalf("joining %s at its new address %s: %v", f.ID, moved, err)
	}
	if m := members(t, c.Leader().Node)[f.ID]; m.Address != moved || m.Suffrage != "voter" {
		t.Fatalf("%s after the join: %+v", f.ID, m)
	}
	mustSet(t, c.Leader().Node, "after", "move")
	waitValue(t, f.Node, "after", "move")
}
