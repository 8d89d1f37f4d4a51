package system_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/evilpeer"
)

// Addresses of TestPeerAttacksE2E: the members on 127.0.0.161-164, a second
// process with a member's ID on .165, the attacker's connections from .169,
// and the dead addresses that joins name on .170-179 (nothing listens there).
const (
	attackerIP = "127.0.0.169"
	deadPrefix = "127.0.0.17"
)

func deadAddr(i int) string { return fmt.Sprintf("%s%d:9", deadPrefix, i) }

// TestPeerAttacksE2E replays the peer-level attacks of issue 10 against a
// cluster of raftkv serve processes of the built binary, with an attacker
// (internal/evilpeer) holding keys read from the members' data directories:
//
//   - a member's key posing as the leader (AppendEntries of a command, term+1;
//     RequestVote, InstallSnapshot, TimeoutNow), or under its own ID at the
//     leader's address, is refused and nothing commits;
//   - a trusted non-member key may only ask to join as itself, a non-voter
//     may forward writes but not administer, and neither may send Raft
//     RPCs, even under its own name;
//   - the seed's GET /join (and POST /v1/cluster/join, and a voter's
//     forwarded join) cannot move live members to dead addresses or add
//     voters nobody runs;
//   - a second process started with a member's --node-id is refused and the
//     member stays;
//   - malformed configuration entries and snapshots sent by a voter under its
//     own name are refused, and no process dies;
//   - forged state digests from a member that does not lead are refused: no
//     node reports a divergence that does not exist.
//
// Each attack is refused, logged by the node that refused it, and leaves the
// cluster with a leader, taking writes, with its data. The subtests are
// independent: each can run alone (-run 'TestPeerAttacksE2E/name').
func TestPeerAttacksE2E(t *testing.T) {
	bin := buildBinary(t)
	start := time.Now()
	// startCluster's layout (n2 joins through the seed's management port,
	// n3 through the HTTP API), with frequent digest checks for the
	// forged-digest attack.
	var c e2eCluster
	for i, id := range []string{"n1", "n2", "n3"} {
		join := ""
		switch i {
		case 1:
			join = c[0].mgmt
		case 2:
			join = c[0].url()
		}
		p := newProc(t, bin, id, fmt.Sprintf("127.0.0.16%d", i+1), join)
		p.args = append(p.args, "--digest-check-interval", "500ms")
		c = append(c, p)
	}
	for _, p := range c {
		p.start()
	}
	c.waitReady(t, 3)
	t.Logf("cluster ready after %v", time.Since(start).Round(time.Millisecond))
	voters := c // the three processes started here; a non-voter may join later
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		ok := t.Run(name, f)
		// Whatever an attack did, no member may have died of it.
		for _, p := range voters {
			if !p.running() {
				t.Fatalf("after %s: %s is not running; the end of its log:\n%s", name, p.id, tail(p.log(p.starts), 12))
			}
		}
		if !ok {
			t.FailNow() // the cluster the next attack needs may be broken
		}
		t.Logf("%s done after %v", name, time.Since(start).Round(time.Millisecond))
	}

	step("impersonate-leader", func(t *testing.T) {
		l := c.leader(t)
		fs := c.followers(t)
		thief, target := fs[0], fs[1]
		writeEverywhere(t, c, l, "before", "1")
		st := raftStatus(t, target)
		p := attacker(t, memberKey(t, thief), thief.id, target)
		hdr := evilpeer.Header(l.id, l.raft)

		// The attack: term+1, one command entry after the target's
		// last, committed at once.
		if resp, err := forgedAppend(t, p, target, hdr, 1, "evil", "forged"); err == nil {
			t.Errorf("%s answered an AppendEntries from %s's key posing as %s: success=%v term=%d", target.id, thief.id, l.id, resp.Success, resp.Term)
		}
		// Its own ID at the leader's address.
		if resp, err := forgedAppend(t, p, target, evilpeer.Header(thief.id, l.raft), 1, "evil", "forged"); err == nil {
			t.Errorf("%s answered an AppendEntries from %s at %s's address: success=%v term=%d", target.id, thief.id, l.id, resp.Success, resp.Term)
		}
		if !logged(target, "raftauth: refused a Raft RPC", "peer="+thief.id, "claimed_id="+thief.id, "claimed_addr="+l.raft) {
			t.Errorf("%s did not log its refusal of %s at %s's address", target.id, thief.id, l.id)
		}
		// The others, with a term no election reaches on its own.
		evilTerm := st.Term + 1000
		if vr, err := p.RequestVote(&raft.RequestVoteRequest{
			RPCHeader: hdr, Term: evilTerm, LastLogIndex: st.LastIndex + 1000, LastLogTerm: evilTerm,
		}); err == nil {
			t.Errorf("%s answered a RequestVote posing as %s: granted=%v term=%d", target.id, l.id, vr.Granted, vr.Term)
		}
		snap := []byte("not a snapshot")
		if sr, err := p.InstallSnapshot(&raft.InstallSnapshotRequest{
			RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: evilTerm,
			LastLogIndex: st.LastIndex + 100, LastLogTerm: evilTerm, Size: int64(len(snap)),
			Configuration: raft.EncodeConfiguration(configOf(voters)), ConfigurationIndex: st.LastIndex,
		}, bytes.NewReader(snap)); err == nil {
			t.Errorf("%s answered an InstallSnapshot posing as %s: success=%v term=%d", target.id, l.id, sr.Success, sr.Term)
		}
		if _, err := p.TimeoutNow(&raft.TimeoutNowRequest{RPCHeader: hdr}); err == nil {
			t.Errorf("%s answered a TimeoutNow posing as %s", target.id, l.id)
		}
		for _, rpc := range []string{"AppendEntries", "RequestVote", "InstallSnapshot", "TimeoutNow"} {
			if !logged(target, "raftauth: refused a Raft RPC", "peer="+thief.id, "claimed_id="+l.id, "rpc="+rpc) {
				t.Errorf("%s did not log its refusal of %s from %s posing as %s", target.id, rpc, thief.id, l.id)
			}
		}
		if n := metric(t, target, "raftkv_peer_raft_rpcs_refused_total"); n < 4 {
			t.Errorf("%s counted %v refused Raft RPCs, want at least 4", target.id, n)
		}

		// A write after the attack reaches every node, the forged one none,
		// and no node took the forged term.
		l2 := c.leader(t)
		if l2 != l {
			t.Logf("leadership moved from %s to %s during the attack", l.id, l2.id)
		}
		writeEverywhere(t, c, l2, "after", "1")
		absentEverywhere(t, c, "evil")
		for _, p := range voters {
			if term := raftStatus(t, p).Term; term >= evilTerm {
				t.Errorf("%s is at the forged term %d", p.id, term)
			}
		}
	})

	step("forwarding-policy", func(t *testing.T) {
		l := c.leader(t)
		victim := c.followers(t)[0]

		// A key trusted for an ID that is not a member (as POST
		// /v1/cluster/trust leaves it before the join) may call nothing but
		// a ping (which answers the node's advertised Raft address) and a
		// join of its own ID.
		ghostKey := newKey(t)
		trustLine(t, l, trust.TrustLine(ghostKey.PublicKey(), "ghost"))
		ghost := attacker(t, ghostKey, "ghost", l)
		waitAdmitted(t, ghost)
		calls := adminCalls(t, victim.id)
		calls["apply"] = applyBody(t, "evil", "ghost")
		calls["query"] = map[string]any{"plugin": "kv", "data": msgpackBody(t, map[string]any{"op": "GET", "key": "before"}), "level": 0}
		calls["status"] = map[string]any{}
		refused := 0
		for method, req := range calls {
			refused++
			if code, msg := forwardCall(t, ghost, method, req); code != peerrpc.CodeForbidden {
				t.Errorf("%s from the trusted non-member ghost: code %d (%s), want forbidden", method, code, msg)
			}
		}
		// Its own join reaches the membership checks (and fails there:
		// nothing holding ghost's key answers at the address it names).
		code, msg := leaderCall(t, c, ghostKey, "ghost", "join", map[string]any{"join": map[string]any{"id": "ghost", "address": deadAddr(9)}})
		if code != peerrpc.CodeInvalid || !strings.Contains(msg, "answers") {
			t.Errorf("ghost's join of itself at a dead address: code %d (%s), want invalid", code, msg)
		}
		if !logged(l, "refused a peer RPC", "peer=ghost", "method=trust") {
			t.Errorf("%s did not log its refusal of ghost's trust", l.id)
		}
		// Nor may it lead, even under its own name.
		gp := attacker(t, ghostKey, "ghost", victim)
		waitAdmitted(t, gp)
		if resp, err := forgedAppend(t, gp, victim, evilpeer.Header("ghost", attackerIP+":7000"), 1000, "evil", "ghost"); err == nil {
			t.Errorf("%s answered an AppendEntries from the non-member ghost: success=%v term=%d", victim.id, resp.Success, resp.Term)
		}
		if !logged(victim, "raftauth: refused a Raft RPC", "peer=ghost", "not in the configuration") {
			t.Errorf("%s did not log its refusal of ghost's AppendEntries", victim.id)
		}

		// A non-voter (raftkv serve --non-voter --join) may forward writes,
		// not administer: the cluster has no token, so nothing it carries
		// can stand for one.
		nv := newProc(t, bin, "n4", "127.0.0.164", l.url())
		nv.args = append(nv.args, "--non-voter")
		nv.start()
		poll(t, 60*time.Second, "n4 a non-voter", func() error {
			if !nv.running() {
				return errors.New("n4 exited")
			}
			for _, m := range clusterOf(t, l).Members {
				if m.ID == "n4" && m.Suffrage == "nonvoter" {
					return nil
				}
			}
			return errors.New("n4 is not a non-voter yet")
		})
		p := attacker(t, memberKey(t, nv), nv.id, l)
		for method, req := range adminCalls(t, victim.id) {
			refused++
			if code, msg := forwardCall(t, p, method, req); code != peerrpc.CodeForbidden {
				t.Errorf("%s from the non-voter n4: code %d (%s), want forbidden", method, code, msg)
			}
		}
		if code, msg := leaderCall(t, c, memberKey(t, nv), nv.id, "apply", applyBody(t, "from-nv", "1")); code != 0 {
			t.Errorf("a write forwarded by the non-voter n4: code %d (%s)", code, msg)
		}
		if !logged(l, "refused a peer RPC", "peer=n4", "role=non-voter", "method=deploy") {
			t.Errorf("%s did not log its refusal of n4's deploy", l.id)
		}
		// A non-voter can neither lead nor stand for election.
		np := attacker(t, memberKey(t, nv), nv.id, victim)
		if resp, err := forgedAppend(t, np, victim, evilpeer.Header(nv.id, nv.raft), 1000, "evil", "n4"); err == nil {
			t.Errorf("%s answered an AppendEntries from the non-voter n4: success=%v term=%d", victim.id, resp.Success, resp.Term)
		}
		if !logged(victim, "raftauth: refused a Raft RPC", "peer=n4", "not a voter") {
			t.Errorf("%s did not log its refusal of n4's AppendEntries", victim.id)
		}
		if n := metric(t, l, "raftkv_peer_rpcs_refused_total"); n < float64(refused) {
			t.Errorf("%s counted %v refused peer RPCs, want at least %d", l.id, n, refused)
		}

		// Nothing the refused calls asked for happened.
		l2 := c.leader(t)
		ms := map[string]member{}
		for _, m := range clusterOf(t, l2).Members {
			ms[m.ID] = m
		}
		if m, ok := ms[victim.id]; !ok || m.Suffrage != "voter" || m.Address != victim.raft {
			t.Errorf("%s after the attacks: %+v", victim.id, m)
		}
		if _, ok := ms["intruder"]; ok {
			t.Errorf("intruder became a member")
		}
		// Trusting ghost's key again changes nothing and answers the list.
		if listed := trustLine(t, l2, trust.TrustLine(ghostKey.PublicKey(), "ghost")); strings.Contains(listed, "intruder") {
			t.Errorf("the intruder's key is listed: %s", listed)
		}
		plugins := mustHTTP(t, 200, "GET", l2.url()+"/v1/plugins", nil).body
		if strings.Contains(plugins, `"evil"`) || !strings.Contains(plugins, `"kv"`) {
			t.Errorf("plugins after the attacks: %s", plugins)
		}
		all := append(c[:len(c):len(c)], nv)
		writeEverywhere(t, all, l2, "after-forwarding", "1") // after from-nv: once there, so is from-nv
		for _, q := range all {
			if v, err := q.staleGet("from-nv"); err != nil || v != "1" {
				t.Errorf("%s: the non-voter's forwarded write: %q %v", q.id, v, err)
			}
		}
		absentEverywhere(t, c, "evil")

		// n4 leaves, so that the next attacks see the three voters alone.
		mustCLI(t, "remove", "n4", "--addr", l2.url())
		nv.kill()
	})

	step("join-moves-and-ghosts", func(t *testing.T) {
		l := c.leader(t)
		before := membersOf(t, l)
		seed := c[0] // n2 joined through its management port: the seed's flow
		fs := c.followers(t)
		seedJoin := func(id, addr string) httpResult {
			t.Helper()
			r, err := doHTTP("GET", "http://"+seed.mgmt+"/join?"+url.Values{"peerID": {id}, "peerAddress": {addr}}.Encode(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		// The two GETs: every live follower to a dead address.
		for i, f := range fs {
			if r := seedJoin(f.id, deadAddr(i)); r.status != 400 || !strings.Contains(r.body, "answers") {
				t.Errorf("GET /join moving %s to %s: %d %s; want 400", f.id, deadAddr(i), r.status, r.body)
			}
		}
		// Into another member's address.
		if r := seedJoin(fs[0].id, fs[1].raft); r.status != 400 {
			t.Errorf("GET /join moving %s to %s's address: %d %s; want 400", fs[0].id, fs[1].id, r.status, r.body)
		}
		// The same through the v1 API of a follower (forwarded to the leader).
		body, _ := json.Marshal(map[string]string{"id": fs[1].id, "address": deadAddr(2)})
		if r, err := doHTTP("POST", fs[0].url()+"/v1/cluster/join", body, "Content-Type", "application/json"); err != nil || r.status != 400 {
			t.Errorf("POST /v1/cluster/join moving %s: %+v %v; want 400", fs[1].id, r, err)
		}
		// And over the peer channel, by a voter's key: a voter may ask for a
		// join, but the join checks hold for it too.
		if code, msg := leaderCall(t, c, memberKey(t, fs[0]), fs[0].id, "join", map[string]any{"join": map[string]any{"id": fs[1].id, "address": deadAddr(3)}}); code != peerrpc.CodeInvalid {
			t.Errorf("%s's forwarded join moving %s: code %d (%s), want invalid", fs[0].id, fs[1].id, code, msg)
		}
		// Three ghost voters: keys trusted, nobody running them.
		for i := range 3 {
			id := fmt.Sprintf("ghost%d", i)
			line := trust.TrustLine(newKey(t).PublicKey(), id)
			if i == 2 { // the key sent with the join
				body, _ := json.Marshal(map[string]string{"id": id, "address": deadAddr(4 + i), "public_key": line})
				if r, err := doHTTP("POST", l.url()+"/v1/cluster/join", body, "Content-Type", "application/json"); err != nil || r.status != 400 {
					t.Errorf("POST /v1/cluster/join of %s: %+v %v; want 400", id, r, err)
				}
				continue
			}
			trustLine(t, l, line)
			if r := seedJoin(id, deadAddr(4+i)); r.status != 400 || !strings.Contains(r.body, "answers") {
				t.Errorf("GET /join of the ghost voter %s: %d %s; want 400", id, r.status, r.body)
			}
		}
		l2 := c.leader(t)
		if l2 != l {
			t.Logf("leadership moved from %s to %s", l.id, l2.id)
		}
		if after := membersOf(t, l2); !equalMembers(before, after) {
			t.Errorf("members changed:\nbefore %v\nafter  %v", before, after)
		}
		writeEverywhere(t, c, l2, "after-joins", "1")
	})

	step("duplicate-node-id", func(t *testing.T) {
		l := c.leader(t)
		victim := c.followers(t)[0]
		dup := newProc(t, bin, victim.id, "127.0.0.165", l.url())
		dup.start()
		// It gives up, or (without the protection) takes the member's place.
		moved := func() *member {
			for _, m := range membersOf(t, l) {
				if m.ID == victim.id && (m.Address != victim.raft || m.Suffrage != "voter") {
					return &m
				}
			}
			return nil
		}
		poll(t, 60*time.Second, "the second "+victim.id+" to give up", func() error {
			if dup.running() && moved() == nil {
				return errors.New("still running")
			}
			return nil
		})
		if m := moved(); m != nil {
			t.Errorf("the second %s took the member's place: %s is now %+v", victim.id, victim.id, *m)
		}
		if dup.running() {
			t.Errorf("the second %s is still running", victim.id)
		} else if dup.cmd.ProcessState.Success() {
			t.Errorf("the second %s exited 0", victim.id)
		}
		if log := dup.log(1); !strings.Contains(log, "already a member") || !strings.Contains(log, "HTTP 400") {
			t.Errorf("the second %s does not say it was refused as a duplicate (HTTP 400, already a member)", victim.id)
		}
		// The member serves: a write through it reaches every node.
		writeEverywhere(t, c, victim, "after-duplicate", "1")
	})

	step("malformed-entries", func(t *testing.T) {
		fs := c.followers(t)
		sender, target := fs[0], fs[1]
		p := attacker(t, memberKey(t, sender), sender.id, target)
		hdr := evilpeer.Header(sender.id, sender.raft) // its own name: a voter may send AppendEntries
		for _, e := range []struct {
			name, reason string
			typ          raft.LogType
			data         []byte
		}{
			// Those Raft would not crash on first (without the protection,
			// the first crash ends the run).
			{"configuration without a voter", "no voter", raft.LogConfiguration, raft.EncodeConfiguration(raft.Configuration{})},
			{"unknown entry type", "unknown type", 99, nil}, // Raft panics when it commits
			{"deprecated add-peer", "LogAddPeerDeprecated", raft.LogAddPeerDeprecated, []byte{0x91, 0xa1, 'x'}},
			{"configuration of the wrong shape", "does not decode", raft.LogConfiguration, []byte{0x93, 1, 2, 3}},
			{"configuration not MsgPack", "does not decode", raft.LogConfiguration, []byte{0xc1, 0xc1}},
		} {
			if !target.running() {
				t.Fatalf("before %s: %s is not running; the end of its log:\n%s", e.name, target.id, tail(target.log(target.starts), 12))
			}
			st := raftStatus(t, target)
			_, err := p.AppendEntries(&raft.AppendEntriesRequest{
				RPCHeader: hdr, Term: st.Term, PrevLogEntry: st.LastIndex, PrevLogTerm: st.Term,
				Entries: []*raft.Log{
					{Index: st.LastIndex + 1, Term: st.Term, Type: raft.LogNoop},
					{Index: st.LastIndex + 2, Term: st.Term, Type: e.typ, Data: e.data},
				},
				LeaderCommitIndex: st.LastIndex + 2,
			})
			if err == nil {
				t.Errorf("%s: %s answered the AppendEntries", e.name, target.id)
			}
			if !logged(target, "raftauth: refused a Raft RPC", "peer="+sender.id, "rpc=AppendEntries", e.reason) {
				t.Errorf("%s: %s did not log its refusal", e.name, target.id)
			}
		}
		// A snapshot whose configuration does not decode.
		st := raftStatus(t, target)
		snap := []byte("not a snapshot")
		if _, err := p.InstallSnapshot(&raft.InstallSnapshotRequest{
			RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: st.Term,
			LastLogIndex: st.LastIndex + 100, LastLogTerm: st.Term, Size: int64(len(snap)),
		}, bytes.NewReader(snap)); err == nil {
			t.Errorf("%s answered an InstallSnapshot without a configuration", target.id)
		}
		if !logged(target, "raftauth: refused a Raft RPC", "peer="+sender.id, "rpc=InstallSnapshot", "configuration") {
			t.Errorf("%s did not log its refusal of the snapshot", target.id)
		}
		for _, q := range voters {
			if !q.running() {
				t.Fatalf("%s died:\n%s", q.id, q.log(q.starts))
			}
		}
		writeEverywhere(t, c, c.leader(t), "after-malformed", "1")
	})

	step("forged-digest", func(t *testing.T) {
		l := c.leader(t)
		fs := c.followers(t)
		sender, target := fs[0], fs[1]
		writeEverywhere(t, c, l, "before-digest", "1")
		// A digest check the target took part in, after the write.
		var index uint64
		poll(t, 30*time.Second, "a digest check answered by "+target.id, func() error {
			var st struct {
				Applied uint64 `json:"applied_index"`
				Last    *struct {
					Index uint64 `json:"index"`
				} `json:"last_digest_check"`
			}
			if err := json.Unmarshal([]byte(mustHTTP(t, 200, "GET", target.url()+"/v1/status", nil).body), &st); err != nil {
				return err
			}
			if st.Last == nil || st.Last.Index == 0 {
				return errors.New("no check yet")
			}
			index = st.Last.Index
			return nil
		})
		// A member that does not lead sends digests that differ from
		// everyone's, at that index, to a follower and to the leader.
		forged := map[string]any{"index": index, "digests": []any{map[string]any{"name": "kv", "state": "forged", "module": "forged"}}}
		for _, q := range []*proc{target, l} {
			p := attacker(t, memberKey(t, sender), sender.id, q)
			if code, msg := forwardCall(t, p, "digest", forged); code != peerrpc.CodeForbidden {
				t.Errorf("forged digest from %s to %s: code %d (%s), want forbidden", sender.id, q.id, code, msg)
			}
			if r, err := doHTTP("GET", q.url()+"/healthz", nil); err != nil || r.status != 200 {
				t.Errorf("%s /healthz after %s's forged digest: %+v %v", q.id, sender.id, r, err)
			}
			if logged(q, "STATE DIVERGENCE") {
				t.Errorf("%s logged a divergence", q.id)
			}
			if !logged(q, "refused a peer RPC", "peer="+sender.id, "method=digest") {
				t.Errorf("%s did not log its refusal of %s's digest", q.id, sender.id)
			}
		}
		writeEverywhere(t, c, c.leader(t), "after-digest", "1")
	})

	// The data written before the attacks is still there, on every node.
	for _, p := range voters {
		if v, err := p.staleGet("before"); err != nil || v != "1" {
			t.Errorf("%s: before = %q, %v", p.id, v, err)
		}
	}
}

// dataDir is the node's --data-dir (newProc's layout).
func (p *proc) dataDir() string { return filepath.Join(p.logDir, "data") }

// memberKey reads a member's private key from its data directory, as an
// attacker who can read that directory would.
func memberKey(t *testing.T, p *proc) ssh.Signer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(p.dataDir(), transport.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// hostKey reads a member's public key from its data directory.
func hostKey(t *testing.T, p *proc) ssh.PublicKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(p.dataDir(), transport.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// newKey returns a fresh ed25519 key.
func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attacker returns an evil peer that logs in to target as node as, with
// key, from attackerIP.
func attacker(t *testing.T, key ssh.Signer, as string, target *proc) *evilpeer.Peer {
	t.Helper()
	p, err := evilpeer.New(evilpeer.Config{
		As: as, Key: key, BindIP: attackerIP,
		Target: target.raft, TargetID: target.id, TargetKey: hostKey(t, target),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitAdmitted waits until the target accepts p's SSH connection (its
// trust list has p's key, which the leader replicates): a ping then gets an
// answer, or a handler's error.
func waitAdmitted(t *testing.T, p *evilpeer.Peer) {
	t.Helper()
	poll(t, 30*time.Second, "the target to accept the key", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := p.Call(ctx, "ping", []byte{0x80})
		var re *transport.RemoteError
		if err == nil || errors.As(err, &re) {
			return nil
		}
		return err
	})
}

// forwardCall sends a forwarding RPC whose body is the MsgPack map req, and
// returns the answer's error code and message (0, "" for success).
func forwardCall(t *testing.T, p *evilpeer.Peer, method string, req map[string]any) (peerrpc.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, msg, err := p.CallMap(ctx, method, req)
	if err != nil {
		t.Fatal(err)
	}
	return code, msg
}

// forgedAppend sends target, through p, an AppendEntries with header hdr
// and the target's term plus ahead, whose one entry, right after the
// target's last, sets key to value in the kv plugin, committed at once: if
// the target took it, it would apply it, and so would every node that later
// followed it.
func forgedAppend(t *testing.T, p *evilpeer.Peer, target *proc, hdr raft.RPCHeader, ahead uint64, key, value string) (*raft.AppendEntriesResponse, error) {
	t.Helper()
	st := raftStatus(t, target)
	data := evilpeer.CommandEntry("kv", msgpackBody(t, map[string]any{"op": "SET", "key": key, "value": value}))
	return p.AppendEntries(&raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: st.Term + ahead, PrevLogEntry: st.LastIndex, PrevLogTerm: st.Term,
		Entries:           []*raft.Log{{Index: st.LastIndex + 1, Term: st.Term + ahead, Type: raft.LogCommand, Data: data}},
		LeaderCommitIndex: st.LastIndex + 1,
	})
}

// leaderCall is forwardCall to the leader of c, with a connection of its
// own; it calls again, on the new leader, while the answer is that the
// node called does not lead (leadership may move on a loaded machine).
func leaderCall(t *testing.T, c e2eCluster, key ssh.Signer, as, method string, req map[string]any) (code peerrpc.Code, msg string) {
	t.Helper()
	poll(t, 60*time.Second, method+" reaching the leader", func() error {
		p := attacker(t, key, as, c.leader(t))
		defer p.Close()
		code, msg = forwardCall(t, p, method, req)
		if code == peerrpc.CodeNotLeader || code == peerrpc.CodeNoLeader {
			return fmt.Errorf("code %d: %s", code, msg)
		}
		return nil
	})
	return code, msg
}

// adminCalls are well-formed requests of every administrative method, each
// of which would change the cluster if it were served.
func adminCalls(t *testing.T, victim string) map[string]map[string]any {
	return map[string]map[string]any{
		"trust":         {"id": "intruder", "key": trust.TrustLine(newKey(t).PublicKey(), "intruder")},
		"remove":        {"id": victim},
		"deploy":        {"plugin": "evil", "wasm": []byte("\x00asm\x01\x00\x00\x00")},
		"remove-plugin": {"plugin": "kv", "drop": true},
		"set-limits":    {"plugin": "kv", "patch": map[string]any{"apply_fuel": 1}},
		"quarantine":    {"plugin": "kv", "reason": "evil"},
		"join":          {"join": map[string]any{"id": victim, "address": deadAddr(8)}},
		// The victim's API address, where clients that follow the
		// membership would send their token.
		"addresses": {"addresses": map[string]any{"id": victim, "api": "http://" + attackerIP + ":8080"}},
	}
}

// applyBody is the body of a forwarded write of key = value.
func applyBody(t *testing.T, key, value string) map[string]any {
	c := msgpackBody(t, map[string]any{"op": "SET", "key": key, "value": value})
	return map[string]any{"commands": []any{map[string]any{"plugin": "kv", "key": "", "data": c}}}
}

// trustLine trusts a key through the member's management API and returns
// the trust list it answers.
func trustLine(t *testing.T, p *proc, line string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"line": line})
	return mustHTTP(t, 200, "POST", "http://"+p.mgmt+"/v1/cluster/trust", body, "Content-Type", "application/json").body
}

// configOf is the configuration of the processes, every one a voter.
func configOf(c e2eCluster) raft.Configuration {
	var cf raft.Configuration
	for _, p := range c {
		cf.Servers = append(cf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.id), Address: raft.ServerAddress(p.raft)})
	}
	return cf
}

// raftPosition is the part of GET /v1/status the attacks need.
type raftPosition struct {
	Term      uint64 `json:"term"`
	LastIndex uint64 `json:"last_index"`
}

// raftStatus returns the node's term and last log index. A node's last
// entry is of its current term once its leader has committed a write (the
// callers make one first, writeEverywhere).
func raftStatus(t *testing.T, p *proc) raftPosition {
	t.Helper()
	var s raftPosition
	if err := json.Unmarshal([]byte(mustHTTP(t, 200, "GET", p.url()+"/v1/status", nil).body), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func clusterOf(t *testing.T, p *proc) clusterAnswer {
	t.Helper()
	a, err := p.cluster()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// membersOf returns the members p lists, without their changing fields.
func membersOf(t *testing.T, p *proc) []member {
	t.Helper()
	var out []member
	for _, m := range clusterOf(t, p).Members {
		out = append(out, member{ID: m.ID, Address: m.Address, Suffrage: m.Suffrage})
	}
	return out
}

func equalMembers(a, b []member) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[member]bool{}
	for _, m := range a {
		in[m] = true
	}
	for _, m := range b {
		if !in[m] {
			return false
		}
	}
	return true
}

// writeEverywhere writes key = value through p and waits until every
// running process of c has it in its own state.
func writeEverywhere(t *testing.T, c e2eCluster, p *proc, key, value string) {
	t.Helper()
	mustHTTP(t, 200, "PUT", p.url()+keyPath(key), []byte(value))
	for _, q := range c {
		if !q.running() {
			continue
		}
		poll(t, 30*time.Second, q.id+" to apply "+key, func() error {
			v, err := q.staleGet(key)
			if err == nil && v != value {
				err = fmt.Errorf("%s = %q", key, v)
			}
			return err
		})
	}
}

// absentEverywhere checks that no running process of c has key.
func absentEverywhere(t *testing.T, c e2eCluster, key string) {
	t.Helper()
	for _, q := range c {
		if !q.running() {
			continue
		}
		r, err := doHTTP("GET", q.url()+keyPath(key)+"?consistency=stale", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != 404 || !strings.Contains(r.body, "key not found") {
			t.Errorf("%s has %s: %d %s", q.id, key, r.status, r.body)
		}
	}
}

// logged reports whether a line of p's current log holds every part.
func logged(p *proc, parts ...string) bool {
	for _, line := range strings.Split(p.log(p.starts), "\n") {
		all := true
		for _, s := range parts {
			if !strings.Contains(line, s) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
