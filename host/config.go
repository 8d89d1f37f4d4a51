package host

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/host/datadir"
	"github.com/raftkv/raftkv/host/logstore"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
)

// The Raft log and stable store of a data directory (see host/logstore).
const (
	// LogStoreBolt is hashicorp/raft-boltdb, the default: two fsyncs per
	// append.
	LogStoreBolt = logstore.Bolt
	// LogStoreWAL is hashicorp/raft-wal: one fsync per append, faster,
	// experimental upstream (see host/logstore for the choice).
	LogStoreWAL = logstore.WAL
)

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// NodeID names the node in the cluster and in the trust list.
	NodeID string
	// DataDir holds the key pair, authorized_keys, the Raft log, snapshots and
	// the compiled-code cache.
	DataDir string
	// RaftAddr is the SSH transport's listen address (host:port).
	RaftAddr string
	// AdvertiseAddr is the address peers dial; defaults to RaftAddr.
	AdvertiseAddr string
	// APIAddress is the node's HTTP API address as clients reach it
	// ("http://host:port"), reported by Status; informational.
	APIAddress string
	// MgmtAddress is the node's management listener ("host:port": the
	// seed's GET /join), if it has one. Both are replicated (addresses.go).
	MgmtAddress string
	// Bootstrap makes a node with no existing state start a single-node
	// cluster. A node with existing state ignores it.
	Bootstrap bool
	// Token is the cluster token (raftkv serve --token). Administrative
	// requests this node forwards carry it, and as leader it accepts them
	// from a non-voter only when they carry the same token (see peerrpc).
	// Empty: only voters may send them.
	Token string

	// ApplyTimeout bounds a write when the caller's context has no deadline.
	ApplyTimeout time.Duration
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune Raft.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is the number of log entries after which a snapshot
	// is taken; SnapshotInterval how often that is checked; TrailingLogs how
	// many entries are kept after a snapshot for slow followers.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// MaxAppendEntries is the most entries sent in one AppendEntries RPC
	// (at most 1024, hashicorp/raft's limit).
	MaxAppendEntries int
	// LogStore picks the Raft log and stable store of a new data directory:
	// LogStoreBolt (the default) or LogStoreWAL. A data directory keeps the
	// store it was created with, whatever this says.
	LogStore string
	// WALSegmentBytes is the size of LogStoreWAL's segment files (default
	// 64 MiB). Compaction deletes whole segments: entries a snapshot
	// covers stay readable, and are sent to lagging followers instead of
	// the snapshot, until their segment goes.
	WALSegmentBytes int

	// DigestCheckInterval is how often the leader checks that every
	// member's state is the same at the same log index (a digest-check
	// entry, see digestcheck.go), when the log has grown since the last
	// check. 0 disables the checks.
	DigestCheckInterval time.Duration

	// PluginMemoryPages caps each plugin instance's memory (64 KiB pages).
	PluginMemoryPages uint32
	// PluginCallTimeout is the wall-clock limit of one plugin call; a breach
	// during apply stops the node applying (fail-stop). A metered call gets
	// at least the time its fuel budget takes at plugin.SlowFuelPerSecond
	// (plugin.Runtime.CallLimit), so only a host bug or a trusted plugin
	// reaches it.
	PluginCallTimeout time.Duration
	// QueryInstances is how many plugin instances per plugin serve queries
	// concurrently.
	QueryInstances int
	// PluginCacheDir holds compiled plugin code, so that restarts do not
	// recompile; defaults to <DataDir>/wasm-cache. Nodes may share one.
	PluginCacheDir string
	// PluginCacheMaxBytes bounds PluginCacheDir: past it, the oldest compiled
	// modules are removed (plugin.Config.CacheMaxBytes). Zero or less leaves
	// it unbounded.
	PluginCacheMaxBytes int64
	// DefaultPlugin is the module deployed as "kv" by the first leader when no
	// "kv" plugin is active. Nil disables it.
	DefaultPlugin []byte
	// natives maps a module hash to the Go code that runs in its place on
	// this node, for benchmarks and tests only: set through
	// internal/hostseam.SetNativePlugins (see there), nil in production.
	natives map[string]plugin.Code
	// network is what the node's transport listens and dials on, for tests
	// only: set through internal/hostseam.SetNetwork, nil (TCP) in
	// production.
	network transport.Network
	// refuseAppends, for tests only (hostseam.SetRefuseAppends).
	refuseAppends func() bool

	// DataDirLock is DataDir's lock, already held (datadir.Acquire), for a
	// caller that must own the directory before it starts the node (raftkv
	// serve takes it before it opens its ports). Nil: New takes it, and
	// fails at once if another process holds it. The node releases it on
	// Close, and on a failed New.
	DataDirLock *datadir.Lock

	// Logger receives the node's logs (Raft's included). Nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for everything but the identity and
// addresses.
func DefaultConfig() Config {
	return Config{
		RaftAddr:            "127.0.0.1:8088",
		ApplyTimeout:        10 * time.Second,
		HeartbeatTimeout:    1000 * time.Millisecond,
		ElectionTimeout:     1000 * time.Millisecond,
		LeaderLeaseTimeout:  500 * time.Millisecond,
		SnapshotThreshold:   8192,
		SnapshotInterval:    30 * time.Second,
		TrailingLogs:        10240,
		MaxAppendEntries:    512,
		LogStore:            LogStoreBolt,
		PluginMemoryPages:   512,
		PluginCallTimeout:   plugin.DefaultConfig().CallTimeout, // 200 s: a last resort, fuel stops plugins
		QueryInstances:      4,
		PluginCacheMaxBytes: plugin.DefaultCacheMaxBytes,
		DigestCheckInterval: time.Minute,
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	if err := trust.ValidateNodeID(c.NodeID); err != nil {
		return fmt.Errorf("raftkv: NodeID: %w", err)
	}
	if c.DataDir == "" {
		return errors.New("raftkv: DataDir is required")
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return fmt.Errorf("raftkv: RaftAddr %q: %w", c.RaftAddr, err)
	}
	adv := c.AdvertiseAddr
	if adv == "" {
		adv = c.RaftAddr
	}
	if err := transport.CheckAdvertisable(adv); err != nil {
		return fmt.Errorf("raftkv: advertise address %w: set AdvertiseAddr to this node's reachable host:port", err)
	}
	switch {
	case c.ApplyTimeout <= 0:
		return errors.New("raftkv: ApplyTimeout must be positive")
	case c.SnapshotThreshold == 0:
		return errors.New("raftkv: SnapshotThreshold must be positive")
	case c.QueryInstances < 1:
		return errors.New("raftkv: QueryInstances must be at least 1")
	case c.DigestCheckInterval < 0:
		return errors.New("raftkv: DigestCheckInterval must not be negative (0 disables the checks)")
	}
	// Raft's own rules (timeouts of at least 5ms, an election timeout no
	// shorter than the heartbeat's, a lease no longer than the heartbeat,
	// at most 1024 entries per AppendEntries, ...), checked here rather than
	// after the data directory and the log are open.
	if err := raft.ValidateConfig(c.raftConfig()); err != nil {
		return fmt.Errorf("raftkv: %w", err)
	}
	if err := (logstore.Config{Dir: c.DataDir, Kind: c.LogStore, WALSegmentBytes: c.WALSegmentBytes}).Validate(); err != nil {
		return err
	}
	if min := plugin.DefaultLimits().MemoryPages; c.DefaultPlugin != nil && c.PluginMemoryPages < min {
		return fmt.Errorf("raftkv: PluginMemoryPages (serve --plugin-memory-pages) is %d: the built-in %q plugin is deployed with "+
			"a memory cap of %d pages and would never load, so the node would never be ready; allow at least %d",
			c.PluginMemoryPages, DefaultPluginName, min, min)
	}
	for _, hash := range slices.Sorted(maps.Keys(c.natives)) {
		if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
			return fmt.Errorf("raftkv: native plugins: key %q is not a module hash (64 lowercase hex digits, as plugin.HashOf gives)", hash)
		}
		if c.natives[hash] == nil {
			return fmt.Errorf("raftkv: native plugins: module %s maps to a nil plugin", hash)
		}
	}
	return nil
}

// raftConfig is the Raft configuration the node runs with (without its
// logger).
func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout
	rc.CommitTimeout = min(rc.CommitTimeout, c.HeartbeatTimeout/2)
	rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs
	rc.MaxAppendEntries = c.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.NoSnapshotRestoreOnStart = false
	return rc
}

func (c *Config) advertise() string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	return c.RaftAddr
}
