package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// readyTimeout bounds how long a node may take to come back (restart,
// catch up, /readyz 200) after a fault is healed. Generous: the suite runs
// on loaded machines, and slowness is not what it looks for.
const readyTimeout = 3 * time.Minute

// fault is one kind of fault: inject it, hold it, heal it, and return an
// error only when the cluster did not come back.
type fault struct {
	name   string
	weight int
	run    func(ctx context.Context, nm *nemesis) error
}

// nemesis injects faults into a cluster, chosen by a seeded RNG.
type nemesis struct {
	c       *cluster
	rng     *rand.Rand
	logf    func(format string, args ...any)
	plugins *pluginSet

	effects map[string]int // what the faults were seen to do, for the report

	kvVariant int // which kv module is active (0: the embedded one)
	fills     int // large values written by the disk-full fault
	verDeploy int // deploys of the "ver" plugin so far
}

// faults is every fault the suite injects.
var faults = []fault{
	{"kill-leader", 3, killLeader},
	{"kill-follower", 3, killFollower},
	{"kill-all", 2, killAll},
	{"pause-leader", 2, pauseLeader},
	{"pause-follower", 1, pauseFollower},
	{"partition-leader", 3, partitionLeader},
	{"partition-random", 2, partitionRandom},
	{"disk-full", 2, diskFull},
	{"member-add-remove", 1, memberAddRemove},
	{"member-replace", 1, memberReplace},
	{"plugin-upgrade-kv", 1, upgradeKV},
	{"plugin-deploy", 1, deployVer},
}

// pick chooses a fault among those enabled, by weight.
func (nm *nemesis) pick(enabled []fault) fault {
	total := 0
	for _, f := range enabled {
		total += f.weight
	}
	r := nm.rng.IntN(total)
	for _, f := range enabled {
		if r < f.weight {
			return f
		}
		r -= f.weight
	}
	panic("unreachable")
}

// hold waits a random 1-4 s (or until ctx ends).
func (nm *nemesis) hold(ctx context.Context) {
	d := time.Duration(1000+nm.rng.IntN(3000)) * time.Millisecond
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// anyOf picks a node.
func (nm *nemesis) anyOf(ns []*node) *node { return ns[nm.rng.IntN(len(ns))] }

func (nm *nemesis) followers() ([]*node, *node, error) {
	l, err := nm.c.leader(60 * time.Second)
	if err != nil {
		return nil, nil, err
	}
	var fs []*node
	for _, n := range nm.c.members() {
		if n != l {
			fs = append(fs, n)
		}
	}
	return fs, l, nil
}

// comeBack restarts every killed member and waits until every member is
// ready again.
func (nm *nemesis) comeBack() error {
	if err := nm.c.restartDown(); err != nil {
		return err
	}
	return nm.c.waitReady(readyTimeout, nm.c.members()...)
}

func killLeader(ctx context.Context, nm *nemesis) error {
	l, err := nm.c.leader(60 * time.Second)
	if err != nil {
		return err
	}
	nm.logf("kill -9 %s (leader)", l.id)
	l.kill()
	nm.hold(ctx)
	return nm.comeBack()
}

func killFollower(ctx context.Context, nm *nemesis) error {
	fs, _, err := nm.followers()
	if err != nil {
		return err
	}
	f := nm.anyOf(fs)
	nm.logf("kill -9 %s (follower)", f.id)
	f.kill()
	nm.hold(ctx)
	return nm.comeBack()
}

func killAll(ctx context.Context, nm *nemesis) error {
	nm.logf("kill -9 every node")
	for _, n := range nm.c.members() {
		n.kill()
	}
	nm.hold(ctx)
	return nm.comeBack()
}

func pause(ctx context.Context, nm *nemesis, n *node, role string) error {
	nm.logf("SIGSTOP %s (%s)", n.id, role)
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	nm.hold(ctx)
	nm.logf("SIGCONT %s", n.id)
	if err := n.signal(syscall.SIGCONT); err != nil {
		return err
	}
	return nm.comeBack()
}

func pauseLeader(ctx context.Context, nm *nemesis) error {
	l, err := nm.c.leader(60 * time.Second)
	if err != nil {
		return err
	}
	return pause(ctx, nm, l, "leader")
}

func pauseFollower(ctx context.Context, nm *nemesis) error {
	fs, _, err := nm.followers()
	if err != nil {
		return err
	}
	return pause(ctx, nm, nm.anyOf(fs), "follower")
}

func partition(ctx context.Context, nm *nemesis, groups ...[]*node) error {
	var desc []string
	for _, g := range groups {
		var ids []string
		for _, n := range g {
			ids = append(ids, n.id)
		}
		desc = append(desc, strings.Join(ids, ","))
	}
	nm.logf("partition %s", strings.Join(desc, " | "))
	err := nm.c.fw.partition(groups...)
	if err == nil {
		nm.hold(ctx)
		nm.hold(ctx)
		nm.observePartition(groups)
	}
	nm.logf("heal")
	if herr := nm.c.fw.heal(); err == nil {
		err = herr
	}
	if err != nil {
		return err
	}
	return nm.comeBack()
}

// observePartition logs whom each node takes for the leader, and counts a
// partition whose majority side elected a leader of its own.
func (nm *nemesis) observePartition(groups [][]*node) {
	var views []string
	led := false
	for _, g := range groups {
		for _, n := range g {
			var v clusterView
			if err := n.get("/v1/cluster", &v); err != nil {
				views = append(views, fmt.Sprintf("%s: %v", n.id, err))
				continue
			}
			views = append(views, fmt.Sprintf("%s: leader %q term %d", n.id, v.Leader, v.Term))
			if 2*len(g) > len(nm.c.members()) && slices.ContainsFunc(g, func(m *node) bool { return m.id == v.Leader }) {
				led = true
			}
		}
	}
	if led {
		nm.effects["partition: the majority side had a leader of its own"]++
	}
	nm.logf("during the partition: %s", strings.Join(views, "; "))
}

// partitionLeader isolates the leader from every other node.
func partitionLeader(ctx context.Context, nm *nemesis) error {
	fs, l, err := nm.followers()
	if err != nil {
		return err
	}
	return partition(ctx, nm, []*node{l}, fs)
}

// partitionRandom splits the members in two random groups (a majority and
// a minority, or two halves of an even-sized cluster).
func partitionRandom(ctx context.Context, nm *nemesis) error {
	ms := nm.c.members()
	nm.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	k := 1 + nm.rng.IntN(len(ms)/2)
	return partition(ctx, nm, ms[:k], ms[k:])
}

// diskFull fills the tmpfs under the disk node's data directory, holds,
// frees it, and waits for the node to resume by itself (never restarted).
func diskFull(ctx context.Context, nm *nemesis) error {
	n := nm.c.diskNode
	if n == nil || nm.c.byID(n.id) == nil {
		return errors.New("the disk node is no longer a member")
	}
	nm.logf("fill the disk of %s", n.id)
	path := filepath.Join(nm.c.diskMnt, "filler")
	if err := fillDisk(path); err != nil {
		return err
	}
	// The node notices when it next needs space, and BoltDB reuses the
	// free pages of its file first: write large values (not in the
	// history) until its /healthz says so, then hold the fault.
	filled := 0
	value := make([]byte, 32<<10)
	err := poll(60*time.Second, n.id+" degraded", func() error {
		for range 4 {
			via := nm.anyOf(nm.c.members())
			key := fmt.Sprintf("fill/%s/%d", n.id, nm.fills)
			nm.fills++
			if a, err := do(ctx, adminClient, "PUT", via.url()+"/v1/kv/"+key, value); err == nil && a.status == 200 {
				filled++
			}
		}
		a, err := do(ctx, adminClient, "GET", n.url()+"/healthz", nil)
		if err != nil {
			return err
		}
		if a.status != 503 || a.errorCode() != "degraded" {
			return errors.New(a.String())
		}
		return nil
	})
	if err != nil {
		nm.logf("%s did not report its full disk after %d writes of 32 KiB: %v", n.id, filled, err)
	} else {
		nm.logf("%s reports its full disk (after %d writes of 32 KiB)", n.id, filled)
		nm.effects["disk-full: the node reported degraded"]++
	}
	nm.hold(ctx)
	nm.logf("free the disk of %s", n.id)
	if err := os.Remove(path); err != nil {
		return err
	}
	if n.exitedUnasked() {
		return fmt.Errorf("%s exited with a full disk: %w", n.id, errExited{n})
	}
	return nm.comeBack()
}

// fillDisk writes a file until its file system is full.
func fillDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					return err
				}
				break
			}
		}
	}
	return nil
}

// removable returns the members a membership fault may remove: any but the
// disk node.
func (nm *nemesis) removable() []*node {
	var out []*node
	for _, n := range nm.c.members() {
		if n != nm.c.diskNode {
			out = append(out, n)
		}
	}
	return out
}

// memberAddRemove adds a node, then removes a random member (which may be
// the leader or the new node), so the cluster keeps its size.
func memberAddRemove(ctx context.Context, nm *nemesis) error {
	via := nm.anyOf(nm.c.members())
	n, err := nm.c.addNode(via, "")
	if err != nil {
		return err
	}
	nm.logf("add %s (joining through %s)", n.id, via.id)
	if err := nm.c.waitReady(readyTimeout, n); err != nil {
		return fmt.Errorf("adding %s: %w", n.id, err)
	}
	nm.hold(ctx)
	gone := nm.anyOf(nm.removable())
	nm.logf("remove %s", gone.id)
	if err := nm.c.removeMember(gone); err != nil {
		return err
	}
	return nm.comeBack()
}

// memberReplace removes a member (its data is lost with it) and adds a new
// node with an empty data directory in its place.
func memberReplace(ctx context.Context, nm *nemesis) error {
	gone := nm.anyOf(nm.removable())
	nm.logf("replace %s: remove it", gone.id)
	if err := nm.c.removeMember(gone); err != nil {
		return err
	}
	nm.hold(ctx)
	via := nm.anyOf(nm.c.members())
	n, err := nm.c.addNode(via, "")
	if err != nil {
		return err
	}
	nm.logf("replace %s: add %s (joining through %s)", gone.id, n.id, via.id)
	return nm.comeBack()
}

// upgradeKV deploys another build of the KV plugin (the workload's own) in
// place of the active one, under load: its state is kept.
func upgradeKV(ctx context.Context, nm *nemesis) error {
	nm.kvVariant = 1 - nm.kvVariant
	mod := nm.plugins.kv[nm.kvVariant]
	nm.logf("upgrade plugin kv to build %d (%d bytes)", nm.kvVariant, len(mod))
	if err := nm.deploy(ctx, "kv", mod); err != nil {
		return err
	}
	return nm.comeBack()
}

// deployVer deploys the next version of the "ver" test plugin (v1, v2, v1,
// ...; each migration writes its state), under load, and waits until every
// member runs the new version.
func deployVer(ctx context.Context, nm *nemesis) error {
	nm.verDeploy++
	v := fmt.Sprint(1 + (nm.verDeploy-1)%2)
	nm.logf("deploy plugin ver v%s", v)
	if err := nm.deploy(ctx, "ver", nm.plugins.ver[v]); err != nil {
		return err
	}
	for _, n := range nm.c.members() {
		err := poll(readyTimeout, n.id+" running ver v"+v, func() error {
			var list struct {
				Plugins []struct{ Name, Version string }
			}
			if err := n.get("/v1/plugins", &list); err != nil {
				return err
			}
			for _, p := range list.Plugins {
				if p.Name == "ver" && p.Version == v {
					return nil
				}
			}
			return fmt.Errorf("%s runs %+v", n.id, list.Plugins)
		})
		if err != nil {
			return err
		}
	}
	return nm.comeBack()
}

// deploy sends a module to a member until it is active: it creates the
// plugin, or upgrades the active module, named by its hash (If-Match), as
// docs/api.md requires. A deploy whose outcome was unknown is found active
// on the next try.
func (nm *nemesis) deploy(ctx context.Context, name string, mod []byte) error {
	sum := sha256.Sum256(mod)
	want := hex.EncodeToString(sum[:])
	return poll(2*time.Minute, "deploy of "+name, func() error {
		n := nm.anyOf(nm.c.members())
		var header []string
		var info struct{ Hash string }
		a, err := do(ctx, adminClient, "GET", n.url()+"/v1/plugins/"+name, nil)
		switch {
		case err != nil:
			return err
		case a.status == 200:
			if err := json.Unmarshal(a.body, &info); err != nil {
				return fmt.Errorf("GET /v1/plugins/%s: %w", name, err)
			}
			if info.Hash == want {
				return nil
			}
			header = []string{"If-Match", `"` + info.Hash + `"`}
		case a.status != 404:
			return fmt.Errorf("GET /v1/plugins/%s through %s: %s", name, n.id, a)
		}
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		a, err = do(dctx, deployClient, "PUT", n.url()+"/v1/plugins/"+name, mod,
			append([]string{"Content-Type", "application/wasm"}, header...)...)
		if err != nil {
			return err
		}
		if a.status != 200 {
			return fmt.Errorf("through %s: %s", n.id, a)
		}
		return nil
	})
}
