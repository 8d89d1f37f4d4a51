package host

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/trust"
)

// TestVouchRefusesARemovedNode: a voter of this node's configuration that
// is behind it (it has not applied a removal this node applied) cannot make
// it trust the removed node again: only the log may. Without the check the
// node took Raft RPCs from n2 as a voter on n1's word.
func TestVouchRefusesARemovedNode(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: Config{NodeID: "n3"}, trust: &trust.Trust{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n.trust.Revoke("n2") // this node applied n2's removal
	servers := []raft.Server{
		{Suffrage: raft.Voter, ID: "n1", Address: "127.0.0.1:1"},
		{Suffrage: raft.Voter, ID: "n3", Address: "127.0.0.1:3"},
	}
	answer := peerrpc.VotersAnswer{Voters: []peerrpc.VouchedVoter{
		{ID: "n1", Address: "127.0.0.1:1"},
		{ID: "n2", Address: "127.0.0.1:2", Trust: []string{trust.Entry{NodeID: "n2", Key: key}.String()}},
	}}
	if err := n.takeVouched("n1", servers, answer); err == nil {
		t.Error("a voucher naming a removed node was taken")
	}
	if v := n.vouched.Load(); v != nil {
		t.Errorf("vouched for %v", *v)
	}
	if n.trust.Trusts("n2") {
		t.Error("n2's key is trusted again")
	}

	// The same answer to a node that has not seen n2 leave is taken.
	m := &Node{cfg: Config{NodeID: "n3"}, trust: &trust.Trust{}, log: n.log}
	if err := m.takeVouched("n1", servers, answer); err != nil {
		t.Fatal(err)
	}
	if v := m.vouched.Load(); v == nil || (*v)["n2"] != "127.0.0.1:2" || !m.trust.Trusts("n2") {
		t.Fatalf("the voucher was not taken: %v, trusts n2 %v", v, m.trust.Trusts("n2"))
	}
}
