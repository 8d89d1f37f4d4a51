package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/transport"
)

// DefaultPluginName is the plugin that always exists: the key-value store.
const DefaultPluginName = "kv"

// Node is one raftkv server: a Raft member whose state machine is a set of
// WebAssembly plugins, reachable by its peers over SSH. Its methods are safe
// for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	signer ssh.Signer
	trust  *transport.Trust

	rt           *plugin.Runtime
	fsm          *fsm
	trans        *transport.Transport
	ntrans       *raft.NetworkTransport
	logStore     logStore
	logStoreKind string        // LogStoreWAL or LogStoreBolt
	logs         raft.LogStore // logStore behind a cache of recent entries
	snaps        raft.SnapshotStore
	raft         *raft.Raft

	trustFileMu sync.Mutex // serialises writes of trust.json: the FSM and AcceptTrust both write it

	peersMu sync.RWMutex
	peers   map[string]string // raft address -> node ID

	// readyTerm is the term whose barrier this node, as its leader, has
	// applied (0: none). Leader reads pass only while it is the current term.
	readyTerm atomic.Uint64
	existing  bool // the data directory had Raft state at start
	metrics   *metrics
	deployMu  sync.Mutex // one deploy validated and proposed at a time (see deployLocal)

	shutdown  chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New starts a node. A node whose data directory has no Raft state and whose
// Config.Bootstrap is set becomes a single-node cluster; otherwise it waits to
// be added by a member (see Join) or recovers its state from disk.
func New(cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raftkv: data dir: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("node", cfg.NodeID)
	// n is not the named result: "return nil, err" must not nil it before
	// the closers below, which use it, run.
	n := &Node{cfg: cfg, log: log, peers: map[string]string{}, shutdown: make(chan struct{}), trust: &transport.Trust{}}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	if n.signer, err = transport.LoadOrCreateKey(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := n.trust.LoadAuthorizedKeys(filepath.Join(cfg.DataDir, transport.AuthorizedKeysFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := n.loadTrust(); err != nil {
		return nil, err
	}

	pcfg := plugin.DefaultConfig()
	pcfg.MemoryLimitPages, pcfg.CallTimeout = cfg.PluginMemoryPages, cfg.PluginCallTimeout
	pcfg.CacheDir, pcfg.Logger = cfg.PluginCacheDir, log
	if cfg.DefaultPlugin != nil {
		// Shipped with the binary and tested: it runs without termination
		// checks, about twice as fast (see plugin.Config.Trusted).
		pcfg.Trusted = map[string]bool{plugin.HashOf(cfg.DefaultPlugin): true}
	}
	if pcfg.CacheDir == "" {
		pcfg.CacheDir = filepath.Join(cfg.DataDir, "wasm-cache")
	}
	if n.rt, err = plugin.NewRuntime(context.Background(), pcfg); err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.rt.Close(context.Background()) })
	n.fsm = newFSM(log, n.rt, n.trust, cfg.QueryInstances, n.setPeers)
	n.fsm.onTrust = n.saveTrust
	n.fsm.natives = cfg.NativePlugins
	n.metrics = newMetrics(n)
	n.fsm.metrics = n.metrics
	closers = append(closers, n.fsm.close)

	if n.logStore, n.logStoreKind, err = openLogStore(cfg.DataDir, cfg.LogStore, cfg.WALSegmentBytes); err != nil {
		return nil, fmt.Errorf("raftkv: raft log: %w", err)
	}
	closers = append(closers, func() { n.logStore.Close() })
	logs, err := raft.NewLogCache(1024, n.logStore)
	if err != nil {
		return nil, err
	}
	n.logs = logs
	hlog := newHCLog(log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("raftkv: snapshot store: %w", err)
	}
	n.snaps = snaps

	n.trans, err = transport.New(transport.Config{
		NodeID: cfg.NodeID, BindAddr: cfg.RaftAddr, AdvertiseAddr: cfg.advertise(),
		Signer: n.signer, Trust: n.trust, Resolve: n.resolve, Logger: log, RPCHandler: n.handleRPC,
	})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.trans.Close() })
	n.ntrans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.trans, MaxPool: 4, Timeout: 10 * time.Second, Logger: hlog,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout
	rc.CommitTimeout = min(rc.CommitTimeout, cfg.HeartbeatTimeout/2)
	rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.NoSnapshotRestoreOnStart = false

	existing, err := raft.HasExistingState(logs, n.logStore, snaps)
	if err != nil {
		return nil, err
	}
	n.existing = existing
	self := raft.Server{ID: rc.LocalID, Address: raft.ServerAddress(cfg.advertise()), Suffrage: raft.Voter}
	n.setPeers(raft.Configuration{Servers: []raft.Server{self}})
	if !existing && cfg.Bootstrap {
		if err := raft.BootstrapCluster(rc, logs, n.logStore, snaps, n.ntrans, raft.Configuration{Servers: []raft.Server{self}}); err != nil {
			return nil, fmt.Errorf("raftkv: bootstrap: %w", err)
		}
		log.Info("bootstrapped a new single-node cluster")
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.logStore, snaps, n.ntrans); err != nil {
		return nil, fmt.Errorf("raftkv: raft: %w", err)
	}
	n.observeLeaderChanges()
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		n.setPeers(f.Configuration())
	}
	n.goFunc(n.watchLeadership)
	log.Info("node started", "raft_addr", cfg.RaftAddr, "advertise", cfg.advertise(), "existing_state", existing)
	return n, nil
}

// goFunc runs f in a goroutine that Close waits for.
func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Close stops the node: it hands leadership over when it leads a cluster of
// several voters, shuts Raft down and releases every resource. Idempotent.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		if n.raft.State() == raft.Leader && len(n.voters()) > 1 {
			f := n.raft.LeadershipTransfer()
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			select {
			case err := <-done:
				if err != nil {
					n.log.Warn("leadership transfer before shutdown failed", "err", err)
				}
			case <-ctx.Done():
			case <-time.After(3 * time.Second):
			}
		}
		close(n.shutdown)
		n.fsm.release() // lets an FSM stuck in fail-stop return
		errs := []error{n.raft.Shutdown().Error()}
		errs = append(errs, n.ntrans.Close(), n.trans.Close())
		n.wg.Wait()
		n.fsm.close()
		errs = append(errs, n.logStore.Close(), n.rt.Close(context.Background()))
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// HasExistingState reports whether the node started from an existing data
// directory (it was a member before), in which case it must not join again.
func (n *Node) HasExistingState() bool { return n.existing }

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Address returns the node's advertised Raft (SSH) address.
func (n *Node) Address() string { return n.cfg.advertise() }

// PublicKey returns the node's SSH public key.
func (n *Node) PublicKey() ssh.PublicKey { return n.signer.PublicKey() }

// TrustLine returns the node's authorized_keys line, "ssh-ed25519 AAAA… <id>".
func (n *Node) TrustLine() string { return transport.TrustLine(n.signer.PublicKey(), n.cfg.NodeID) }

func (n *Node) setPeers(c raft.Configuration) {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for _, s := range c.Servers {
		n.peers[string(s.Address)] = string(s.ID)
	}
}

// resolve tells the transport which node it reaches when it dials addr.
func (n *Node) resolve(addr string) (string, bool) {
	n.peersMu.RLock()
	id, ok := n.peers[addr]
	n.peersMu.RUnlock()
	if ok || n.raft == nil {
		return id, ok
	}
	// A configuration not yet committed (a server being added) is in Raft's
	// latest configuration only.
	f := n.raft.GetConfiguration()
	done := make(chan struct{})
	go func() { f.Error(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		return "", false
	}
	if f.Error() == nil {
		n.setPeers(f.Configuration())
	}
	n.peersMu.RLock()
	defer n.peersMu.RUnlock()
	id, ok = n.peers[addr]
	return id, ok
}

// watchLeadership runs a barrier whenever this node becomes leader, so that
// reads are served only once every entry committed by earlier leaders is
// applied here, and deploys the default plugin if the cluster has none. A
// fail-stopped node hands leadership over, so that the others can go on.
func (n *Node) watchLeadership() {
	ch := n.raft.LeaderCh()
	failed := n.fsm.failedCh
	var retry <-chan time.Time // handing leadership over again
	for {
		select {
		case <-n.shutdown:
			return
		case <-failed:
			failed = nil
			n.readyTerm.Store(0)
			retry = n.handOverFailed()
		case <-retry:
			retry = n.handOverFailed()
		case leader := <-ch:
			n.readyTerm.Store(0)
			if !leader {
				continue
			}
			if n.fsm.failed.Load() != nil {
				retry = n.handOverFailed()
				continue
			}
			// The barrier covers this term, or a later one if leadership
			// changes meanwhile: then the term check below fails.
			term := n.raft.CurrentTerm()
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
				n.log.Warn("leader barrier failed", "err", err)
				continue
			}
			if n.raft.State() == raft.Leader {
				n.ensureSelfTrusted()
				n.ensureDefaultPlugin()
				if n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term {
					n.readyTerm.Store(term)
					n.log.Info("leading", "term", term)
				}
			}
		}
	}
}

// handOverFailed transfers leadership away from a fail-stopped leader (best
// effort: a voter must be up to date to take it) and returns when to try
// again, nil when this node does not lead.
func (n *Node) handOverFailed() <-chan time.Time {
	if !n.isLeader() {
		return nil
	}
	if len(n.voters()) < 2 {
		n.log.Error("fail-stopped leader of a single-voter cluster: no one to hand leadership to")
		return nil
	}
	n.log.Error("fail-stopped: handing leadership over")
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		n.log.Warn("leadership transfer after a fail-stop failed; retrying", "err", err)
		return time.After(n.cfg.ElectionTimeout)
	}
	return nil
}

// leaderReady reports whether this node leads in the term whose barrier it
// applied.
func (n *Node) leaderReady() bool {
	t := n.readyTerm.Load()
	return t != 0 && t == n.raft.CurrentTerm() && n.isLeader()
}

// ensureSelfTrusted puts the leader's own key in the replicated trust list,
// so that nodes which join later learn it.
func (n *Node) ensureSelfTrusted() {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.trustLocal(ctx, n.cfg.NodeID, n.TrustLine()); err != nil {
		n.log.Warn("adding own key to the trust list failed", "err", err)
	}
}

func (n *Node) ensureDefaultPlugin() {
	for wait := 100 * time.Millisecond; n.cfg.DefaultPlugin != nil && n.fsm.plugin(DefaultPluginName) == nil && n.isLeader() && n.fsm.failed.Load() == nil; wait = min(2*wait, 5*time.Second) {
		// Compiling takes seconds (much longer under the race detector): the
		// budget covers it as well as the proposal.
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout+2*time.Minute)
		_, err := n.deployLocal(ctx, DefaultPluginName, n.cfg.DefaultPlugin)
		cancel()
		if err == nil {
			return
		}
		n.log.Error("deploying the default plugin failed; retrying", "err", err, "in", wait)
		select {
		case <-n.shutdown:
			return
		case <-time.After(wait):
		}
	}
}

// isLeader reports whether this node leads and may serve leader reads.
func (n *Node) isLeader() bool { return n.raft.State() == raft.Leader }

// propose appends an envelope to the log on this node, which must be the
// leader, and waits for it to be applied.
func (n *Node) propose(ctx context.Context, e envelope) (*applyResult, error) {
	if err := n.fsm.stopped(); err != nil {
		return nil, err
	}
	e.Time = time.Now().UnixNano()
	data, err := e.encode()
	if err != nil {
		return nil, err
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, ErrTimeout
		}
	}
	f := n.raft.Apply(data, timeout)
	if ctx.Done() != nil {
		done := make(chan struct{})
		go func() { f.Error(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the write was proposed and may still be applied: %v", ErrTimeout, ctx.Err())
		case <-n.shutdown:
			return nil, ErrClosed
		}
	}
	if err := f.Error(); err != nil {
		return nil, mapRaftErr(err)
	}
	r, ok := f.Response().(*applyResult)
	if !ok {
		return nil, fmt.Errorf("raftkv: unexpected FSM response %T", f.Response())
	}
	return r, nil
}

func mapRaftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrUnknownOutcome
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: leadership transfer in progress", ErrNotLeader)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return err
}

// Apply proposes a command for the named plugin and returns the plugin's
// result. A follower forwards it to the leader over SSH; the leader's result,
// or its error, comes back intact. A write is never retried automatically.
func (n *Node) Apply(ctx context.Context, pluginName string, cmd []byte) (abi.Result, error) {
	if len(cmd) > abi.MaxCommandSize {
		return abi.Result{}, fmt.Errorf("%w: command of %d bytes exceeds the %d-byte limit", ErrInvalid, len(cmd), abi.MaxCommandSize)
	}
	if !n.isLeader() {
		return n.forward(ctx, rpcApply, &rpcRequest{Plugin: pluginName, Data: cmd})
	}
	return n.applyLocal(ctx, pluginName, cmd)
}

func (n *Node) applyLocal(ctx context.Context, pluginName string, cmd []byte) (abi.Result, error) {
	r, err := n.propose(ctx, envelope{Kind: kindCommand, Plugin: pluginName, Payload: cmd})
	if err != nil {
		return abi.Result{}, err
	}
	return r.res, r.err
}

// Consistency is the guarantee a read asks for.
type Consistency uint8

const (
	// Leader (the default): the leader answers after confirming with a quorum
	// that it still leads. No stale leader answers after a partition or pause.
	Leader Consistency = iota
	// Stale: any node answers from its local state, without coordination.
	Stale
	// Linearizable: read index. The leader records its commit index, confirms
	// leadership with a quorum and waits until it has applied that index.
	Linearizable
)

// ParseConsistency parses "stale", "leader", "linearizable" ("" is Leader).
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "leader", "default":
		return Leader, nil
	case "stale", "none", "weak":
		return Stale, nil
	case "linearizable", "strong", "linearized":
		return Linearizable, nil
	}
	return Leader, fmt.Errorf("%w: unknown consistency %q (want stale, leader or linearizable)", ErrInvalid, s)
}

func (c Consistency) String() string {
	return [...]string{"leader", "stale", "linearizable"}[c]
}

// Query runs a read-only query on the named plugin at the given consistency.
// The plugin's code and the state it reads are those active at the same log
// index. A node that stopped applying the log (fail-stop, see
// Stats().Failure) refuses leader and linearizable reads with ErrStopped;
// it still answers stale reads, from the state at the last entry it applied
// (stale by definition; its health says it stopped).
func (n *Node) Query(ctx context.Context, pluginName string, q []byte, level Consistency) (abi.Result, error) {
	if len(q) > abi.MaxCommandSize {
		return abi.Result{}, fmt.Errorf("%w: query of %d bytes exceeds the %d-byte limit", ErrInvalid, len(q), abi.MaxCommandSize)
	}
	if level > Linearizable {
		return abi.Result{}, fmt.Errorf("%w: unknown consistency %d", ErrInvalid, level)
	}
	if level != Stale && !n.isLeader() {
		return n.forward(ctx, rpcQuery, &rpcRequest{Plugin: pluginName, Data: q, Level: level})
	}
	return n.queryLocal(ctx, pluginName, q, level)
}

func (n *Node) queryLocal(ctx context.Context, pluginName string, q []byte, level Consistency) (abi.Result, error) {
	if level != Stale {
		if err := n.fsm.stopped(); err != nil {
			return abi.Result{}, err
		}
		var readIndex uint64
		if level == Linearizable {
			readIndex = n.raft.CommitIndex()
		}
		if err := n.verifyLeader(ctx); err != nil {
			return abi.Result{}, err
		}
		if err := n.waitApplied(ctx, readIndex); err != nil {
			return abi.Result{}, err
		}
	}
	return n.fsm.query(ctx, pluginName, q)
}

// WaitApplied blocks until this node's state machine reflects every log
// entry up to index (for example a write's index, or another node's commit
// index), or ctx ends. Entries Raft keeps to itself (a new leader's no-op)
// count as reflected.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error { return n.waitApplied(ctx, index) }

// waitApplied blocks until the state machine reflects every entry up to index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		applied, ch := n.fsm.appliedSignal()
		if applied >= index || n.onlyHostEntries(applied+1, index) {
			return nil
		}
		if err := n.fsm.stopped(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for index %d to be applied (at %d): %v", ErrTimeout, index, applied, ctx.Err())
		case <-n.shutdown:
			return ErrClosed
		}
	}
}

// onlyHostEntries reports whether the entries from..to are all of kinds Raft
// never hands to the FSM (no-ops, barriers), so the FSM already reflects to.
// Raft's new leaders append such entries, and the commit index often points
// at one.
func (n *Node) onlyHostEntries(from, to uint64) bool {
	if to-from > 64 {
		return false
	}
	var l raft.Log
	for i := from; i <= to; i++ {
		if err := n.logs.GetLog(i, &l); err != nil {
			// Compacted into a snapshot, which the FSM has restored.
			snap, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
			if i <= snap {
				continue
			}
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// verifyLeader confirms with a quorum that this node still leads, and that it
// has applied every entry committed before its term: the term of the barrier
// it applied is the current term, before and after the confirmation (so the
// leadership confirmed is that term's, not a later one whose barrier has not
// run yet).
func (n *Node) verifyLeader(ctx context.Context) error {
	term := n.readyTerm.Load()
	notReady := func() error {
		if n.isLeader() {
			return fmt.Errorf("%w: leader is still catching up after its election", ErrNoLeader)
		}
		return ErrNotLeader
	}
	if term == 0 || term != n.raft.CurrentTerm() {
		return notReady()
	}
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			if errors.Is(err, raft.ErrLeadershipLost) {
				// For a write that means an unknown outcome; a read just
				// did not happen.
				return fmt.Errorf("%w: leadership lost while confirming it", ErrNotLeader)
			}
			return mapRaftErr(err)
		}
		if n.raft.CurrentTerm() != term {
			return notReady()
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: confirming leadership: %v", ErrTimeout, ctx.Err())
	}
}

// WaitForLeader blocks until the cluster has a leader known to this node.
func (n *Node) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			if !n.isLeader() || n.leaderReady() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no leader: %v", ErrTimeout, ctx.Err())
		case <-n.shutdown:
			return ErrClosed
		case <-t.C:
		}
	}
}

// Leader returns the leader's ID and Raft address ("" when there is none).
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.isLeader() }

// AppliedIndex returns the index of the last log entry applied here.
func (n *Node) AppliedIndex() uint64 { return n.fsm.applied.Load() }
