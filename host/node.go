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
	"github.com/raftkv/raftkv/host/datadir"
	"github.com/raftkv/raftkv/host/logstore"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/raftauth"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/fsm"
)

// DefaultPluginName is the plugin that always exists: the key-value store.
const DefaultPluginName = fsm.DefaultPluginName

// The cache of the last log entries written, from which the leader
// replicates without reading them back: as many entries as Raft's own
// default cache, and at most 16 MiB of them (a log of large transactions
// made an entry-bounded cache hold 130 MB).
const (
	logCacheEntries = 1024
	logCacheBytes   = 16 << 20
)

// Node is one raftkv server: a Raft member whose state machine is a set of
// WebAssembly plugins, reachable by its peers over SSH. Its methods are safe
// for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	lock   *datadir.Lock
	signer ssh.Signer
	trust  *trust.Trust

	rt           *plugin.Runtime
	fsm          *fsm.FSM
	trans        *transport.Transport
	ntrans       *raft.NetworkTransport
	logStore     logstore.Store
	watched      *logstore.Watched // logStore's write errors (the same store)
	logStoreKind string            // LogStoreWAL or LogStoreBolt
	logs         raft.LogStore     // logStore behind a cache of recent entries
	snaps        raft.SnapshotStore
	raft         *raft.Raft
	raftStarted  atomic.Bool                       // n.raft is set: the RPC server may use it (serveRPC)
	raftReady    atomic.Pointer[raft.Raft]         // raft, once NewRaft has returned (authorizeRaft runs before)
	raftUp       chan struct{}                     // closed when raftReady is set
	joinVoters   atomic.Pointer[[]string]          // ExpectLeaders: whom a node waiting to be added hears
	vouched      atomic.Pointer[map[string]string] // voters a voter of this node's configuration named, ID → Raft address (vouch.go)
	hclog        *hclogAdapter                     // raft's logger; told when the node shuts down

	trustFileMu sync.Mutex // serialises writes of trust.json: the FSM and AcceptTrust both write it
	trustIndex  uint64     // the log index of the trust list trust.json held at the start

	peersMu sync.RWMutex
	peers   map[string]string // raft address -> node ID

	joiningMu sync.Mutex
	joining   map[string]chan struct{} // node IDs this leader is adding (joinLocal), closed when done: their keys are fixed meanwhile

	// readyTerm is the term whose barrier this node, as its leader, has
	// applied (0: none). Leader reads pass only while it is the current term.
	readyTerm atomic.Uint64
	commits   *leaderCommits     // the leader's commit index as a follower learns it
	otrans    *observedTransport // ntrans, its AppendEntries observed (see readiness.go)
	// aheadSince: since when (Unix ns) readiness found the applied index
	// ahead of the leader's commit index; 0: not ahead, -1: warned.
	aheadSince atomic.Int64
	// divergedWarned: divergentAppend refused an entry and logged why.
	divergedWarned atomic.Bool
	existing       bool // the data directory had Raft state at start
	metrics        *metrics
	diverged       divergences // what the digest checks found (digestcheck.go)
	deployMu       sync.Mutex  // one deploy validated and proposed at a time (see deployLocal)
	// keptLeadership: watchLeadership's goroutine only: this fail-stopped
	// leader said it keeps leadership (see handOverFailed).
	keptLeadership bool

	shutdown  chan struct{}
	stopCtx   context.Context // ends when shutdown closes
	endStop   context.CancelFunc
	forwarder *peerrpc.Batcher // batches forwarded writes
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
	// The data directory's lock comes first: nothing else is opened
	// before this process owns the directory.
	lock := cfg.DataDirLock
	if lock == nil {
		if lock, err = datadir.Acquire(cfg.DataDir); err != nil {
			return nil, err
		}
	} else if lock.Dir() != cfg.DataDir {
		return nil, fmt.Errorf("raftkv: DataDirLock holds %s, not the DataDir %s", lock.Dir(), cfg.DataDir)
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	if err := datadir.CheckNodeID(cfg.DataDir, cfg.NodeID); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("node", cfg.NodeID)
	// Before the key is read or the log opened: a directory or file others
	// could read is made private, and said so.
	changed, err := datadir.FixModes(cfg.DataDir)
	for _, c := range changed {
		log.Warn("data dir: removed group and other permissions", "path", c.Path, "old_mode", fmt.Sprintf("%04o", c.Old), "new_mode", fmt.Sprintf("%04o", c.New))
	}
	if err != nil {
		return nil, err
	}
	removeRestoreTemps(cfg.DataDir, log)
	// n is not the named result: "return nil, err" must not nil it before
	// the closers below, which use it, run.
	n := &Node{cfg: cfg, log: log, lock: lock, peers: map[string]string{}, shutdown: make(chan struct{}), raftUp: make(chan struct{}), trust: &trust.Trust{}}
	n.stopCtx, n.endStop = context.WithCancel(context.Background())
	n.forwarder = peerrpc.NewBatcher(peerrpc.BatcherConfig{
		Send:    func(ctx context.Context, req *peerrpc.ApplyBody) (abi.Result, error) { return n.forward(ctx, req) },
		Go:      n.goFunc,
		Stop:    n.stopCtx,
		Timeout: cfg.ApplyTimeout,
		Sent:    func(writes int) { n.metrics.forwardBatch.Observe(float64(writes)) },
	})
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
	if err := n.trust.LoadAuthorizedKeys(filepath.Join(cfg.DataDir, trust.AuthorizedKeysFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := n.loadTrust(); err != nil {
		return nil, err
	}

	pcfg := plugin.DefaultConfig()
	pcfg.MemoryLimitPages, pcfg.CallTimeout = cfg.PluginMemoryPages, cfg.PluginCallTimeout
	pcfg.CacheDir, pcfg.CacheMaxBytes, pcfg.Logger = cfg.PluginCacheDir, cfg.PluginCacheMaxBytes, log
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
	n.metrics = newMetrics(n)
	n.fsm = fsm.New(fsm.Config{
		Log: log, Runtime: n.rt, Trust: n.trust, QueryInstances: cfg.QueryInstances, Natives: cfg.natives,
		OnPeers: n.setPeers, OnTrust: n.saveTrust, TrustFloor: n.trustIndex, Metrics: n.metrics.fsm,
	})
	closers = append(closers, n.fsm.Close)

	hlog := newHCLog(log)
	n.hclog = hlog
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("raftkv: snapshot store: %w", err)
	}
	n.snaps = snaps
	// The log is checked after the latest snapshot, where raft reads it.
	var snapIndex uint64
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		snapIndex = metas[0].Index
	}
	lcfg := logstore.Config{Dir: cfg.DataDir, Kind: cfg.LogStore, WALSegmentBytes: cfg.WALSegmentBytes, SnapshotIndex: snapIndex}
	store, kind, err := logstore.Open(lcfg)
	if err != nil {
		return nil, err
	}
	n.watched = logstore.Watch(store)
	n.logStore, n.logStoreKind = n.watched, kind
	closers = append(closers, func() { n.logStore.Close() })
	logs := logstore.NewCache(n.logStore, logCacheEntries, logCacheBytes)
	n.logs = logs

	n.trans, err = transport.New(transport.Config{
		NodeID: cfg.NodeID, BindAddr: cfg.RaftAddr, AdvertiseAddr: cfg.advertise(),
		Signer: n.signer, Trust: n.trust, Resolve: n.resolve, Logger: log, RPCHandler: n.serveRPC,
		Network: cfg.network,
	})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { n.trans.Close() })
	n.ntrans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftauth.Wrap(n.trans, raftauth.Config{
			Admit: n.admitRaft, Authorize: n.authorizeRaft, Refused: n.metrics.raftRefused.Inc, Logger: log,
		}),
		MaxPool: 4, Timeout: 10 * time.Second, Logger: hlog,
		// No pipelining. With it (hashicorp/raft v1.7.3, 2 RPCs in
		// flight, unbuffered hand-offs), a follower's unsuccessful answer
		// (its append failed: a full disk) ends the pipeline's decoder
		// while the next response waits to be handed to it and the sender
		// waits to hand over its next request: the leader's replication to
		// that follower stopped for good, silently, heartbeats going on
		// (the chaos suite, seed 203 with disk-full and kill-follower).
		// raft's own docs find pipelining of little benefit; 1 disables it.
		MaxRPCsInFlight: 1,
	})
	n.commits = &leaderCommits{window: cfg.HeartbeatTimeout}
	n.otrans = &observedTransport{NetworkTransport: n.ntrans, rpcs: make(chan raft.RPC), commits: n.commits, shutdown: n.shutdown,
		refuse: cfg.refuseAppends, diverged: n.divergentAppend}

	rc := cfg.raftConfig()
	rc.Logger = hlog

	// Raft panics on a log entry it cannot read: logstore.Open read them
	// all, and whatever it still finds becomes an error naming the log.
	var existing bool
	if err := logstore.Contain(cfg.DataDir, func() (err error) {
		existing, err = raft.HasExistingState(logs, n.logStore, snaps)
		return err
	}); err != nil {
		return nil, err
	}
	n.existing = existing
	if err := logstore.Contain(cfg.DataDir, func() error { return n.recoverFromPeersFile(rc, logs, snaps, existing) }); err != nil {
		return nil, err
	}
	self := raft.Server{ID: rc.LocalID, Address: raft.ServerAddress(cfg.advertise()), Suffrage: raft.Voter}
	n.setPeers(raft.Configuration{Servers: []raft.Server{self}})
	if !existing && cfg.Bootstrap {
		if err := raft.BootstrapCluster(rc, logs, n.logStore, snaps, n.ntrans, raft.Configuration{Servers: []raft.Server{self}}); err != nil {
			return nil, fmt.Errorf("raftkv: bootstrap: %w", err)
		}
		log.Info("bootstrapped a new single-node cluster")
	}
	// The entries the node holds when it starts were applied before a
	// restart (or, not yet applied here, on the members that committed
	// them): their plugin output is not logged again as raft replays them.
	if existing {
		if last, err := n.logStore.LastIndex(); err == nil {
			n.rt.SetQuietThrough(last)
		}
	}
	if err := logstore.Contain(cfg.DataDir, func() (err error) {
		n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.logStore, snaps, n.otrans)
		return err
	}); err != nil {
		return nil, fmt.Errorf("raftkv: raft: %w", err)
	}
	n.raftReady.Store(n.raft)
	close(n.raftUp)
	n.raftStarted.Store(true)
	n.goFunc(n.otrans.run)
	n.observeLeaderChanges()
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		n.setPeers(f.Configuration())
		n.warnMoved(f.Configuration())
	}
	if why := n.Removed(); why != "" {
		log.Warn(why)
	}
	n.goFunc(n.watchLeadership)
	n.goFunc(n.publishAddresses)
	n.goFunc(n.vouchLoop)
	if cfg.DigestCheckInterval > 0 {
		n.goFunc(n.checkDigestsLoop)
	}
	log.Info("node started", "raft_addr", cfg.RaftAddr, "advertise", cfg.advertise(), "existing_state", existing)
	return n, nil
}

// serveRPC answers the node-to-node calls (forwarded requests, pings,
// status). The transport listens before Raft runs (raft.NewRaft restores
// the latest snapshot first, which takes seconds), and a peer that still
// takes this node for the leader it was before it was killed and restarted
// forwards requests to it meanwhile: until Raft runs, every call but a ping
// (which needs nothing) is answered ErrNotReady (a write was not applied;
// its client may send it again).
// Found by the fault suite (test/chaos): the handler dereferenced the nil
// n.raft and answered writes with "RPC handler panicked".
func (n *Node) serveRPC(ctx context.Context, peerID, method string, body []byte) ([]byte, error) {
	if !n.raftStarted.Load() && method != peerrpc.Ping.Name {
		resp := peerrpc.ResponseOf(abi.Result{}, fmt.Errorf("%w: %s is starting (Raft is not running yet)", ErrNotReady, n.cfg.NodeID))
		return resp.Marshal(), nil
	}
	return n.handleRPC(ctx, peerID, method, body)
}

// warnMoved logs, as an error, a restart at another Raft address than the
// configuration's: the members refuse this node's vote requests (their
// address is not the configuration's, peerauth.go), the leader still
// dials the old address, and nothing else on this node would say why it
// never rejoins (found by restarting a node with another --raft-addr).
func (n *Node) warnMoved(cf raft.Configuration) {
	self := n.trans.Addr().String()
	for _, s := range cf.Servers {
		if string(s.ID) == n.cfg.NodeID && string(s.Address) != self && len(cf.Servers) > 1 {
			n.log.Error("this node advertises another Raft address than the cluster's configuration has for it: "+
				"the members will refuse its votes and the leader dials the old address. Restart it at the old "+
				"address, or have a member join it at the new one (raftkv join, or GET /join?peerID=&peerAddress=)",
				"configured_address", s.Address, "advertised_address", self)
		}
	}
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
// ctx bounds all of it (30 s without a deadline): the leadership transfer
// (3 s at most of it), Raft's shutdown and the release. If ctx ends first,
// Close stops waiting and returns ErrTimeout; the node goes on stopping in
// the background and releases its log store and the data directory's lock
// once Raft has stopped. A Raft that never stops (a stable-store write that
// keeps failing: its disk is full) keeps them until the process exits.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		n.hclog.shuttingDown() // connections ending from now on are expected, not errors
		if n.raft.State() == raft.Leader && len(n.voters()) > 1 {
			tctx, tcancel := context.WithTimeout(ctx, 3*time.Second)
			answered, err := waitFuture(tctx, n.raft.LeadershipTransfer(), nil)
			tcancel()
			if answered && err != nil {
				n.log.Warn("leadership transfer before shutdown failed", "err", err)
			}
		}
		close(n.shutdown)
		n.endStop()
		n.forwarder.Close()
		n.fsm.Release() // lets an FSM stuck in fail-stop return
		stopped := make(chan error, 1)
		go func() { stopped <- n.stop() }()
		select {
		case n.closeErr = <-stopped:
			n.log.Info("node stopped")
		case <-ctx.Done():
			// Raft's main loop waits for something that will not come: a
			// stable-store write that keeps failing, or a peer. Closing the
			// transports fails what waits on a peer.
			n.closeErr = fmt.Errorf("%w: the node did not stop in time (%v)", ErrTimeout, ctx.Err())
			if _, werr := n.watched.WriteError(); werr != nil {
				n.closeErr = fmt.Errorf("%w (its log cannot be written: %v)", n.closeErr, werr)
			}
			go func() {
				n.ntrans.Close()
				n.trans.Close()
			}()
			n.log.Error("closing the node", "err", n.closeErr)
		}
	})
	return n.closeErr
}

// stop shuts Raft down and then releases the node's resources, the data
// directory's lock last. Close runs it once, after the node's shutdown.
func (n *Node) stop() error {
	errs := []error{n.raft.Shutdown().Error()}
	errs = append(errs, n.ntrans.Close(), n.trans.Close())
	n.wg.Wait()
	n.fsm.Close()
	errs = append(errs, n.logStore.Close(), n.rt.Close(context.Background()))
	errs = append(errs, n.lock.Close()) // last: the directory is free
	return errors.Join(errs...)
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
func (n *Node) TrustLine() string { return trust.TrustLine(n.signer.PublicKey(), n.cfg.NodeID) }

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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if answered, err := waitFuture(ctx, f, nil); !answered {
		return "", false
	} else if err == nil {
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
	failed, _ := n.fsm.FailSignals()
	var recovered <-chan struct{}
	var retry <-chan time.Time // handing leadership over again
	for {
		select {
		case <-n.shutdown:
			return
		case <-failed:
			failed = nil
			_, recovered = n.fsm.FailSignals()
			n.readyTerm.Store(0)
			retry = n.handOverFailed()
		case <-recovered:
			recovered, retry = nil, nil
			failed, _ = n.fsm.FailSignals()
			n.keptLeadership = false
			n.log.Info("applying the log again after a quarantine")
			// A snapshot past the failed entry: later restarts do not
			// replay it (a faster run could then apply it).
			n.goFunc(func() {
				if err := n.raft.Snapshot().Error(); err != nil {
					n.log.Warn("snapshot after recovering from a fail-stop failed", "err", err)
				}
			})
			if n.isLeader() {
				n.lead()
			}
		case <-retry:
			retry = n.handOverFailed()
		case leader := <-ch:
			n.readyTerm.Store(0)
			if !leader {
				continue
			}
			if n.fsm.Failure() != "" {
				retry = n.handOverFailed()
				continue
			}
			n.lead()
		}
	}
}

// lead makes this new leader ready: it applies a barrier, so that reads
// are served only once every entry committed by earlier leaders is applied
// here, then puts its key in the trust list and deploys the default plugin
// if the cluster has none.
func (n *Node) lead() {
	// The barrier covers this term, or a later one if leadership changes
	// meanwhile: then the term check below fails.
	term := n.raft.CurrentTerm()
	if err := n.await(n.raft.Barrier(n.cfg.ApplyTimeout)); err != nil {
		n.log.Warn("leader barrier failed", "err", err)
		return
	}
	if n.raft.State() == raft.Leader && n.fsm.Failure() == "" {
		n.ensureSelfTrusted()
		n.ensureDefaultPlugin()
		if n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term && n.fsm.Failure() == "" {
			n.readyTerm.Store(term)
			n.log.Info("leading", "term", term)
		}
	}
}

// await waits for a Raft future, or until the node shuts down: a barrier
// waits for the state machine, which a fail-stop may have stopped, and Close
// waits for the goroutine that waits for the barrier. The goroutine that
// reads the future ends when Raft answers it.
func (n *Node) await(f raft.Future) error {
	_, err := waitFuture(context.Background(), f, n.shutdown)
	return err
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
	for wait := 100 * time.Millisecond; n.cfg.DefaultPlugin != nil && n.fsm.Plugin(DefaultPluginName) == nil && n.isLeader() && n.fsm.Failure() == ""; wait = min(2*wait, 5*time.Second) {
		// Compiling takes seconds (much longer under the race detector): the
		// budget covers it as well as the proposal.
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout+2*time.Minute)
		_, err := n.deployLocal(ctx, DefaultPluginName, n.cfg.DefaultPlugin, DeployOptions{Force: true})
		cancel()
		if err == nil {
			return
		}
		if !n.isLeader() {
			// Leadership moved on mid-deploy: the new leader deploys it.
			n.log.Info("deploying the default plugin: no longer the leader", "err", err)
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
func (n *Node) propose(ctx context.Context, e fsm.Envelope) (*fsm.Result, error) {
	return n.proposeEntry(ctx, e, false)
}

// proposeEntry is propose; a fail-stopped node refuses unless evenStopped.
func (n *Node) proposeEntry(ctx context.Context, e fsm.Envelope, evenStopped bool) (*fsm.Result, error) {
	f, err := n.enqueue(ctx, e, evenStopped)
	if err != nil {
		return nil, err
	}
	return n.awaitApply(ctx, f)
}

// enqueue hands an entry to Raft without waiting for it to commit.
func (n *Node) enqueue(ctx context.Context, e fsm.Envelope, evenStopped bool) (raft.ApplyFuture, error) {
	if err := n.fsm.Stopped(); err != nil && !evenStopped {
		return nil, err
	}
	e.Time = time.Now().UnixNano()
	data, err := e.Encode()
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
	return n.raft.Apply(data, timeout), nil
}

// awaitApply waits for an enqueued entry's result.
func (n *Node) awaitApply(ctx context.Context, f raft.ApplyFuture) (*fsm.Result, error) {
	if ctx.Done() != nil {
		if answered, err := waitFuture(ctx, f, n.shutdown); !answered {
			if errors.Is(err, ErrClosed) {
				return nil, err
			}
			return nil, errProposedTimeout(ctx)
		}
	}
	return n.futureResult(f)
}

func errProposedTimeout(ctx context.Context) error {
	return fmt.Errorf("%w: the write was proposed and may still be applied: %v", ErrTimeout, ctx.Err())
}

// futureResult is the result of a future that is done.
func (n *Node) futureResult(f raft.ApplyFuture) (*fsm.Result, error) {
	if err := f.Error(); err != nil {
		err = mapRaftErr(err)
		if err == f.Error() {
			// Not one of Raft's own errors: the log store's, which Raft's
			// log cache hands over as a string. Say it plainly.
			if _, werr := n.watched.WriteError(); werr != nil {
				return nil, werr
			}
		}
		return nil, err
	}
	r, ok := f.Response().(*fsm.Result)
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
	case errors.Is(err, raft.ErrAbortedByRestore):
		// The restore's snapshot replaced the state this entry would have
		// changed: whether or not it was applied before, it is not in the
		// state now. Not an internal error (it was, as raft's text).
		return fmt.Errorf("%w: a restore replaced the cluster's state while this write was committing: "+
			"it is not in the restored state", ErrConflict)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return err
}

// Apply proposes a command for the named plugin and returns the plugin's
// result. A follower forwards it to the leader over SSH; the leader's result,
// or its error, comes back intact. A write is never retried automatically.
func (n *Node) Apply(ctx context.Context, pluginName string, cmd []byte) (abi.Result, error) {
	return n.ApplyOnce(ctx, pluginName, "", cmd)
}

// ApplyOnce is Apply with an idempotency key (none if key is ""): a command
// whose key the cluster has seen recently is not applied again, and gets
// the result the first one got, the same on every node (see internal/fsm/sessions.go).
// A write whose outcome is unknown (ErrUnknownOutcome, ErrTimeout, a lost
// connection) can be sent again with the same key. A key names one request:
// used with another plugin or other bytes, it is refused with ErrInvalid.
func (n *Node) ApplyOnce(ctx context.Context, pluginName, key string, cmd []byte) (abi.Result, error) {
	if len(cmd) > abi.MaxCommandSize {
		return abi.Result{}, fmt.Errorf("%w: command of %d bytes exceeds the %d-byte limit", ErrInvalid, len(cmd), abi.MaxCommandSize)
	}
	if key != "" {
		if err := ValidIdempotencyKey(key); err != nil {
			return abi.Result{}, err
		}
	}
	if !n.isLeader() {
		return n.forwarder.Apply(ctx, peerrpc.Command{Plugin: pluginName, Key: key, Data: cmd})
	}
	return n.applyLocal(ctx, pluginName, key, cmd)
}

func (n *Node) applyLocal(ctx context.Context, pluginName, key string, cmd []byte) (abi.Result, error) {
	f, res, err := n.proposeCommand(ctx, pluginName, key, cmd)
	if f == nil {
		return res, err
	}
	r, err := n.awaitApply(ctx, f)
	if err != nil {
		return abi.Result{}, err
	}
	return r.Res, r.Err
}

// proposeCommand checks a write and hands it to Raft. Without a future,
// the write was refused (an error, or the plugin's refusal in the result).
func (n *Node) proposeCommand(ctx context.Context, pluginName, key string, cmd []byte) (raft.ApplyFuture, abi.Result, error) {
	if res, err := n.checkCommand(ctx, pluginName, key, cmd); err != nil || !res.OK() {
		return nil, res, err
	}
	f, err := n.enqueue(ctx, fsm.Envelope{Kind: fsm.KindCommand, Plugin: pluginName, Payload: cmd, Key: key}, false)
	return f, abi.Result{}, err
}

// checkCommand checks a write before it is proposed: an error, or a result
// that is not OK (the plugin's raftkv_validate refused it), refuses it.
func (n *Node) checkCommand(ctx context.Context, pluginName, key string, cmd []byte) (abi.Result, error) {
	if len(cmd) > abi.MaxCommandSize { // from a peer
		return abi.Result{}, fmt.Errorf("%w: command of %d bytes exceeds the %d-byte limit", ErrInvalid, len(cmd), abi.MaxCommandSize)
	}
	if err := n.defaultPluginLoaded(pluginName); err != nil {
		return abi.Result{}, err
	}
	if key != "" {
		if err := ValidIdempotencyKey(key); err != nil { // from a peer
			return abi.Result{}, err
		}
	}
	return n.fsm.Validate(ctx, pluginName, cmd) // raftkv_validate
}

// applyForwarded applies a batch of forwarded writes. Each is checked and
// proposed as applyLocal does, every one before any is waited for, so that
// Raft appends them together; each gets its own result or error.
func (n *Node) applyForwarded(ctx context.Context, cmds []peerrpc.Command) peerrpc.ApplyResponse {
	out := make(peerrpc.ApplyResponse, len(cmds))
	futures := make([]raft.ApplyFuture, len(cmds))
	set := func(i int, res abi.Result, err error) { out[i] = peerrpc.ResponseOf(res, err) }
	// Every command is checked first, then the others handed to Raft in a
	// tight loop: Raft groups what is waiting in its apply channel into one
	// append, so a plugin call between two of them would split the group.
	ok := make([]bool, len(cmds))
	for i, c := range cmds {
		res, err := n.checkCommand(ctx, c.Plugin, c.Key, c.Data)
		if ok[i] = err == nil && res.OK(); !ok[i] {
			set(i, res, err)
		}
	}
	for i, c := range cmds {
		if !ok[i] {
			continue
		}
		f, err := n.enqueue(ctx, fsm.Envelope{Kind: fsm.KindCommand, Plugin: c.Plugin, Payload: c.Data, Key: c.Key}, false)
		if err != nil {
			set(i, abi.Result{}, err)
			continue
		}
		futures[i] = f
	}
	done := make(chan struct{})
	go func() {
		for _, f := range futures {
			if f != nil {
				f.Error()
			}
		}
		close(done)
	}()
	var waitErr error
	select {
	case <-done:
	case <-ctx.Done():
		waitErr = errProposedTimeout(ctx)
	case <-n.shutdown:
		waitErr = ErrClosed
	}
	for i, f := range futures {
		switch {
		case f == nil:
		case waitErr != nil:
			set(i, abi.Result{}, waitErr)
		default:
			r, err := n.futureResult(f)
			if err == nil {
				set(i, r.Res, r.Err)
			} else {
				set(i, abi.Result{}, err)
			}
		}
	}
	return out
}

// defaultPluginLoaded returns ErrNotReady for the default plugin while this
// node has not loaded it: during start-up, before it has applied the entry
// that deployed it (or, on a new cluster, before its first leader deployed
// it), a request for it is early, not for a plugin that does not exist.
func (n *Node) defaultPluginLoaded(pluginName string) error {
	if pluginName != DefaultPluginName || n.cfg.DefaultPlugin == nil || n.fsm.Plugin(pluginName) != nil {
		return nil
	}
	if err := n.fsm.Stopped(); err != nil {
		return err
	}
	return fmt.Errorf("%w: the %s plugin is not loaded yet (applied index %d): retry shortly", ErrNotReady, pluginName, n.fsm.Applied())
}

// Consistency is the guarantee a read asks for (a forwarded read carries
// it: host/peerrpc).
type Consistency = peerrpc.Consistency

const (
	// Leader (the default): the leader answers after confirming with a quorum
	// that it still leads. No stale leader answers after a partition or pause.
	Leader = peerrpc.Leader
	// Stale: any node answers from its local state, without coordination.
	Stale = peerrpc.Stale
	// Linearizable: read index. The leader records its commit index, confirms
	// leadership with a quorum and waits until it has applied that index.
	Linearizable = peerrpc.Linearizable
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
		return n.forward(ctx, &peerrpc.QueryBody{Plugin: pluginName, Data: q, Level: level})
	}
	return n.queryLocal(ctx, pluginName, q, level)
}

func (n *Node) queryLocal(ctx context.Context, pluginName string, q []byte, level Consistency) (abi.Result, error) {
	if err := n.defaultPluginLoaded(pluginName); err != nil {
		return abi.Result{}, err
	}
	if level != Stale {
		if err := n.fsm.Stopped(); err != nil {
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
	return n.fsm.Query(ctx, pluginName, q)
}

// WaitApplied blocks until this node's state machine reflects every log
// entry up to index (for example a write's index, or another node's commit
// index), or ctx ends. Entries Raft keeps to itself (a new leader's no-op)
// count as reflected.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error { return n.waitApplied(ctx, index) }

// waitApplied blocks until the state machine reflects every entry up to index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		applied, ch := n.fsm.AppliedSignal()
		if applied >= index || n.onlyHostEntries(applied+1, index) {
			return nil
		}
		if err := n.fsm.Stopped(); err != nil {
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
	answered, err := waitFuture(ctx, n.raft.VerifyLeader(), nil)
	if !answered {
		return fmt.Errorf("%w: confirming leadership: %v", ErrTimeout, err)
	}
	if err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) {
			// For a write that means an unknown outcome; a read just did
			// not happen.
			return fmt.Errorf("%w: leadership lost while confirming it", ErrNotLeader)
		}
		return mapRaftErr(err)
	}
	if n.raft.CurrentTerm() != term {
		return notReady()
	}
	return nil
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
func (n *Node) AppliedIndex() uint64 { return n.fsm.Applied() }
