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

	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/plugins/sdk"
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
	// Bootstrap makes a node with no existing state start a single-node
	// cluster. A node with existing state ignores it.
	Bootstrap bool

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
	// MaxAppendEntries is the most entries sent in one AppendEntries RPC.
	MaxAppendEntries int
	// LogStore picks the Raft log and stable store of a new data directory:
	// LogStoreWAL (the default) or LogStoreBolt. A data directory keeps the
	// store it was created with, whatever this says.
	LogStore string
	// WALSegmentBytes is the size of LogStoreWAL's segment files (default
	// 64 MiB). Compaction deletes whole segments: entries a snapshot
	// covers stay readable, and are sent to lagging followers instead of
	// the snapshot, until their segment goes.
	WALSegmentBytes int

	// PluginMemoryPages caps each plugin instance's memory (64 KiB pages).
	PluginMemoryPages uint32
	// PluginCallTimeout is the wall-clock limit of one plugin call; a breach
	// during apply stops the node applying (fail-stop).
	PluginCallTimeout time.Duration
	// QueryInstances is how many plugin instances per plugin serve queries
	// concurrently.
	QueryInstances int
	// PluginCacheDir holds compiled plugin code, so that restarts do not
	// recompile; defaults to <DataDir>/wasm-cache. Nodes may share one.
	PluginCacheDir string
	// DefaultPlugin is the module deployed as "kv" by the first leader when no
	// "kv" plugin is active. Nil disables it.
	DefaultPlugin []byte
	// NativePlugins maps the sha256 of a module (hex, as plugin.HashOf gives
	// it) to the Go code that module was built from: when a module with that
	// hash is activated, by its deploy entry or by a snapshot, this node runs
	// that code on the host (plugin.Native) instead of instantiating the
	// module. Everything else is as for any module (it is deployed through
	// the log, validated, compiled and described from its wasm, and carried
	// in snapshots), so the log, the state and the results are a wasm node's;
	// only the engine differs (a trap's message text aside). It exists to
	// measure what WebAssembly costs (raftkv serve --native-kv); nodes in
	// production leave it nil. The Go code runs unsandboxed, with no memory
	// cap or call time limit, and its queries run concurrently with each
	// other and with applies: map only code shipped in the binary, with no
	// mutable fields (kvstore.KV{} for kvwasm.Module).
	NativePlugins map[string]sdk.Plugin

	// Logger receives the node's logs (Raft's included). Nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults for everything but the identity and
// addresses.
func DefaultConfig() Config {
	return Config{
		RaftAddr:           "127.0.0.1:8088",
		ApplyTimeout:       10 * time.Second,
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		MaxAppendEntries:   512,
		LogStore:           LogStoreWAL,
		PluginMemoryPages:  512,
		PluginCallTimeout:  5 * time.Second,
		QueryInstances:     4,
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	if err := transport.ValidateNodeID(c.NodeID); err != nil {
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
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return fmt.Errorf("raftkv: AdvertiseAddr %q: %w", adv, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) || port == "0" {
		return fmt.Errorf("raftkv: advertise address %q is not dialable: set AdvertiseAddr to this node's reachable host:port", adv)
	}
	switch {
	case c.ApplyTimeout <= 0:
		return errors.New("raftkv: ApplyTimeout must be positive")
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond:
		return errors.New("raftkv: HeartbeatTimeout and ElectionTimeout must be at least 5ms")
	case c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return errors.New("raftkv: LeaderLeaseTimeout must be positive and at most HeartbeatTimeout")
	case c.SnapshotThreshold == 0 || c.SnapshotInterval <= 0:
		return errors.New("raftkv: SnapshotThreshold and SnapshotInterval must be positive")
	case c.MaxAppendEntries < 1 || c.MaxAppendEntries > 4096:
		return errors.New("raftkv: MaxAppendEntries must be in [1, 4096]")
	case c.QueryInstances < 1:
		return errors.New("raftkv: QueryInstances must be at least 1")
	case c.WALSegmentBytes < 0 || c.WALSegmentBytes > 1<<30:
		return errors.New("raftkv: WALSegmentBytes must be in [0, 1 GiB]")
	case c.LogStore != "" && c.LogStore != LogStoreWAL && c.LogStore != LogStoreBolt:
		return fmt.Errorf("raftkv: LogStore %q: want %q or %q", c.LogStore, LogStoreWAL, LogStoreBolt)
	}
	for _, hash := range slices.Sorted(maps.Keys(c.NativePlugins)) {
		if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
			return fmt.Errorf("raftkv: NativePlugins: key %q is not a module hash (64 lowercase hex digits, as plugin.HashOf gives)", hash)
		}
		if c.NativePlugins[hash] == nil {
			return fmt.Errorf("raftkv: NativePlugins: module %s maps to a nil plugin", hash)
		}
	}
	return nil
}

func (c *Config) advertise() string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	return c.RaftAddr
}
