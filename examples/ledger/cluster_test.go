//go:build !wasip1

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/examples/ledger/ledger"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/cluster"
)

func deploy(t testing.TB, n *host.Node, wasm []byte, opts ...host.DeployOptions) host.PluginInfo {
	t.Helper()
	start := time.Now()
	cluster.Deploy(t, n, "ledger", wasm, opts...)
	// DeployPlugin returns once the leader has applied the deploy; through a
	// follower, the follower's description is complete once it has too.
	var info host.PluginInfo
	cluster.Poll(t, 30*time.Second, func() bool {
		for _, p := range n.Plugins() {
			if p.Name == "ledger" {
				info = p
			}
		}
		return info.Hash == plugin.HashOf(wasm)
	}, "%s does not run the deployed module: %+v", n.ID(), &info)
	t.Logf("deployed ledger %s through %s at index %d in %v", info.Version, n.ID(), info.ActiveSince, time.Since(start).Round(time.Millisecond))
	return info
}

func command(t testing.TB, n *host.Node, cmd any) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, "ledger", enc(t, cmd))
	if err != nil {
		return nil, err
	}
	return res.Data, res.Err()
}

func nodeQuery(t testing.TB, n *host.Node, level host.Consistency, q any, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Query(ctx, "ledger", enc(t, q), level)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		t.Fatalf("%v on %s: %v", q, n.ID(), err)
	}
	if err := msgpack.Unmarshal(res.Data, out); err != nil {
		t.Fatalf("%v on %s: %v", q, n.ID(), err)
	}
}

type historyTx struct {
	Tx   uint64 `msgpack:"tx"`
	Time string `msgpack:"time"`
}

// accountHistory reads an account's whole history from n's own state, a
// page at a time (a busy account has more than one page's worth).
func accountHistory(t testing.TB, n *host.Node, account string) []historyTx {
	t.Helper()
	var all []historyTx
	q := m{"op": "history", "account": account, "limit": 50} // pages: some 130k fuel per entry, 20M of query fuel (ledger/doc.go)
	for {
		var h struct {
			Transactions []historyTx `msgpack:"transactions"`
			Next         *uint64     `msgpack:"next"`
		}
		nodeQuery(t, n, host.Stale, q, &h)
		all = append(all, h.Transactions...)
		if h.Next == nil {
			return all
		}
		q["after"] = *h.Next
	}
}

// TestClusterUpgrade deploys ledger v1 on a 3-node cluster, runs random
// transfers through every node (followers forward them to the leader) and,
// in the middle of that load, upgrades to v2 through a follower. Every node
// must end at the same applied index with the same state digest, running v2,
// with the ledger's invariants intact and the history that v2's migration
// built from v1's transactions visible on every node.
func TestClusterUpgrade(t *testing.T) {
	v1, v2 := buildModule(t, "."), buildModule(t, "./v2")
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: cluster.PatientRaft})
	info1 := deploy(t, c.Leader().Node, v1)

	const accounts, initial = 8, 1000
	var names []string
	for i := range accounts {
		name := fmt.Sprintf("acct-%d", i)
		names = append(names, name)
		// The deposit has a ref, so both commands are safe to retry when
		// leadership moves under load: a retry of one that was applied
		// answers conflict (the account exists, the ref was used).
		for _, cmd := range []any{m{"op": "open", "account": name}, m{"op": "deposit", "account": name, "amount": initial, "ref": "init-" + name}} {
			retried := false
			cluster.Poll(t, 2*time.Minute, func() bool {
				_, err := command(t, c.Leader().Node, cmd)
				var refusal *abi.Error
				switch {
				case err == nil:
					return true
				case retried && errors.As(err, &refusal) && refusal.Code == abi.CodeConflict:
					return true // the earlier attempt was applied
				case errors.Is(err, host.ErrUnknownOutcome), errors.Is(err, host.ErrTimeout),
					errors.Is(err, host.ErrNoLeader), errors.Is(err, host.ErrNotLeader):
					t.Logf("%v: %v; retrying", cmd, err)
					retried = true
					return false
				}
				t.Fatalf("%v: %v", cmd, err)
				return false
			}, "%v never applied", cmd)
		}
	}
	const minted = accounts * initial

	var ok, refused, unknown atomic.Int64
	var okTx sync.Map // tx index → true, for successful transfers
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, mem := range c.Members {
		wg.Add(1)
		go func(n *host.Node, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				from, to := names[rng.IntN(accounts)], names[rng.IntN(accounts)]
				if from == to {
					continue
				}
				amount := rng.IntN(400) + 1
				data, err := command(t, n, m{"op": "transfer", "from": from, "to": to, "amount": amount})
				var refusal *abi.Error
				switch {
				case err == nil:
					var r struct {
						Tx uint64 `msgpack:"tx"`
					}
					if err := msgpack.Unmarshal(data, &r); err != nil {
						t.Errorf("transfer result %x: %v", data, err)
						return
					}
					okTx.Store(r.Tx, true)
					ok.Add(1)
				case errors.Is(err, host.ErrUnknownOutcome), errors.Is(err, host.ErrTimeout):
					unknown.Add(1) // may or may not have been applied
				case errors.Is(err, host.ErrNoLeader), errors.Is(err, host.ErrNotLeader):
				case errors.As(err, &refusal) && refusal.Code == ledger.CodeInsufficientFunds &&
					strings.HasPrefix(refusal.Message, "insufficient funds: account "+from+" holds "):
					refused.Add(1)
				default:
					t.Errorf("transfer of %d from %s to %s through %s: unexpected error %v", amount, from, to, n.ID(), err)
					return
				}
			}
		}(mem.Node, uint64(i))
	}
	// The load runs until enough transfers have been applied on each side
	// of the upgrade (or a writer failed).
	applied := func(after uint64) int {
		n := 0
		okTx.Range(func(k, _ any) bool {
			if k.(uint64) >= after {
				n++
			}
			return true
		})
		return n
	}
	cluster.Poll(t, 60*time.Second, func() bool { return t.Failed() || applied(0) >= 20 }, "no transfers applied before the upgrade")
	follower := c.Followers()[0]
	// v2's migration rebuilds the history from every v1 transaction (some
	// 70k fuel each): a fast machine applies thousands under the load
	// before the upgrade, past the default 200M load fuel, so the upgrade
	// brings a larger budget, as an operator would for a big ledger.
	loadFuel := uint64(5_000_000_000)
	info2 := deploy(t, follower.Node, v2, host.DeployOptions{Limits: host.LimitsPatch{LoadFuel: &loadFuel}})
	cluster.Poll(t, 60*time.Second, func() bool { return t.Failed() || applied(info2.ActiveSince) >= 20 }, "no transfers applied after the upgrade")
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if info2.Version != "2.0.0" || !info2.HasMigrate || info2.ActiveSince <= info1.ActiveSince {
		t.Fatalf("upgrade: %+v after %+v", info2, info1)
	}
	var before, after int
	okTx.Range(func(k, _ any) bool {
		if k.(uint64) < info2.ActiveSince {
			before++
		} else {
			after++
		}
		return true
	})
	t.Logf("%d transfers applied (%d before the upgrade, %d after), %d refused, %d with an unknown outcome", ok.Load(), before, after, refused.Load(), unknown.Load())
	if before == 0 || after == 0 {
		t.Fatalf("the load did not span the upgrade: %d transfers before it, %d after", before, after)
	}

	// Same applied index, same digest, same code everywhere.
	c.WaitConverged(3)
	var digests []host.Digest
	cluster.Poll(t, 30*time.Second, func() bool {
		digests = digests[:0]
		for _, mem := range c.Members {
			d, err := mem.Node.StateDigest("ledger")
			if err != nil {
				t.Fatal(err)
			}
			digests = append(digests, d)
		}
		return digests[1] == digests[0] && digests[2] == digests[0]
	}, "replicas disagree: %v", &digests)
	t.Logf("every node: digest %s… of %d keys at index %d", digests[0].Digest[:16], digests[0].Keys, digests[0].AppliedIndex)

	for _, mem := range c.Members {
		n := mem.Node
		var active *host.PluginInfo
		for _, p := range n.Plugins() {
			if p.Name == "ledger" {
				active = &p
			}
		}
		if active == nil || active.Hash != info2.Hash || active.Version != "2.0.0" || active.ActiveSince != info2.ActiveSince {
			t.Fatalf("%s runs %+v, want v2 %+v", mem.ID, active, info2)
		}
		// Each node's own state (stale reads): invariants and migrated data.
		var a auditResult
		nodeQuery(t, n, host.Stale, m{"op": "audit"}, &a)
		if !a.OK || a.Supply != minted || a.Sum != minted || a.Counted != accounts {
			t.Fatalf("%s: audit %+v, want supply %d", mem.ID, a, minted)
		}
		var migrated, maintained int
		for _, name := range names {
			var b balance
			nodeQuery(t, n, host.Stale, m{"op": "balance", "account": name}, &b)
			txs := accountHistory(t, n, name)
			if b.TxCount == 0 || uint64(len(txs)) != b.TxCount || txs[len(txs)-1].Tx != b.LastTx {
				t.Fatalf("%s: %s has %+v and %d history entries", mem.ID, name, b, len(txs))
			}
			for _, x := range txs {
				if x.Time == "" {
					t.Fatalf("%s: %s: transaction %d has no time", mem.ID, name, x.Tx)
				}
				if x.Tx < info2.ActiveSince {
					migrated++
				} else {
					maintained++
				}
			}
		}
		// Each transfer appears in two histories, each deposit in one. A
		// transfer whose outcome was unknown may have been applied too.
		slack := 2 * int(unknown.Load())
		if want := accounts + 2*before; migrated < want || migrated > want+slack {
			t.Fatalf("%s: %d history entries from before the upgrade, want %d (+%d)", mem.ID, migrated, want, slack)
		}
		if maintained < 2*after || maintained > 2*after+slack {
			t.Fatalf("%s: %d history entries from after the upgrade, want %d (+%d)", mem.ID, maintained, 2*after, slack)
		}
	}

	// A follower answers a leader read by forwarding it, with v2's fields.
	var b balance
	nodeQuery(t, follower.Node, host.Leader, m{"op": "balance", "account": names[0]}, &b)
	if b.Account != names[0] || b.TxCount == 0 {
		t.Fatalf("balance through %s: %+v", follower.ID, b)
	}
}
