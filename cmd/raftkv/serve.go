package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// serveOptions is everything "raftkv serve" is configured with.
type serveOptions struct {
	NodeID        string
	DataDir       string
	HTTPAddr      string
	RaftAddr      string
	MgmtAddr      string
	AdvertiseAddr string
	Join          string
	Bootstrap     optionalBool
	NonVoter      bool
	JoinTimeout   time.Duration

	LogLevel  string
	LogFormat string

	Token   string
	TLSCert string
	TLSKey  string
	CACert  string

	ShutdownTimeout time.Duration
	PprofAddr       string
	NativeKV        bool

	Node host.Config    // identity, addresses, Bootstrap and Logger are filled in by serve
	API  httpapi.Config // Token and Logger are filled in by serve
}

// seedEnv are the RaftKV seed's variables, read after RAFTKV_<NAME>.
var seedEnv = map[string][]string{
	"node-id":   {"NODE_ID"},
	"bootstrap": {"BOOTSTRAP"},
	"join":      {"JOIN_ADDR"},
}

const serveSummary = `Run a raftkv node. A new node without --join bootstraps a single-node cluster; with --join
it asks that member (its HTTP or management address) to trust its key and add it, retrying
until the member answers. A node restarted on an existing data directory rejoins with its data
and ignores --join and --bootstrap. --bootstrap=false without --join starts a node that waits
to be added with 'raftkv join'. SIGINT or SIGTERM shut it down gracefully (a leader hands
leadership over first).`

func parseServeFlags(args []string, stdout io.Writer) (*serveOptions, error) {
	o := &serveOptions{Node: host.DefaultConfig(), API: httpapi.DefaultConfig()}
	fs := newFlagSet("serve", "[flags]", serveSummary, stdout)
	fs.StringVar(&o.NodeID, "node-id", "", "this node's ID, unique in the cluster (default: the short host name, or node1)")
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the key pair, trust list, Raft log and snapshots (default ./raftkv-data/<node-id>)")
	fs.StringVar(&o.HTTPAddr, "http-addr", "127.0.0.1:8080", "client HTTP API listen address")
	fs.StringVar(&o.RaftAddr, "raft-addr", "127.0.0.1:8088", "Raft SSH transport listen address")
	fs.StringVar(&o.MgmtAddr, "mgmt-addr", "127.0.0.1:6000", "management listen address (seed /join and /v1/cluster/*); empty disables it")
	fs.StringVar(&o.AdvertiseAddr, "advertise-addr", "", "Raft address peers dial (default --raft-addr; <hostname>:<port> when --raft-addr listens on all interfaces)")
	fs.StringVar(&o.Join, "join", "", "HTTP or management address of any member to join through (http://host:port; host:port is accepted)")
	fs.Var(&o.Bootstrap, "bootstrap", "start a new single-node cluster (the default for a new node without --join)")
	fs.BoolVar(&o.NonVoter, "non-voter", false, "join as a non-voting member that receives the log")
	fs.DurationVar(&o.JoinTimeout, "join-timeout", 0, "give up joining after this long (0: retry until shut down)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.Token, "token", "", "require 'Authorization: Bearer <token>' on the HTTP and management APIs; also sent when joining")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM); needs --tls-key")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&o.CACert, "ca-cert", "", "CA certificate (PEM) to verify the --join member's HTTPS certificate (default: system roots)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "serve Go's profiler (/debug/pprof/) on this address, unauthenticated; empty disables it")
	fs.Int64Var(&o.API.MaxBodyBytes, "max-body-bytes", o.API.MaxBodyBytes, "largest request body accepted (commands, transactions); values, plugin modules and restores have their own limits")
	fs.DurationVar(&o.API.RequestTimeout, "request-timeout", o.API.RequestTimeout, "time limit of one API request")
	fs.DurationVar(&o.API.StreamIdleTimeout, "stream-idle-timeout", o.API.StreamIdleTimeout, "longest pause in the body of a plugin deploy or a restore")

	var pages uint
	fs.UintVar(&pages, "plugin-memory-pages", uint(o.Node.PluginMemoryPages), "memory cap of a plugin instance, in 64 KiB pages")
	fs.DurationVar(&o.Node.PluginCallTimeout, "plugin-call-timeout", o.Node.PluginCallTimeout, "wall-clock limit of one plugin call (a breach while applying stops the node)")
	fs.IntVar(&o.Node.QueryInstances, "query-instances", o.Node.QueryInstances, "plugin instances per plugin serving queries concurrently")
	fs.StringVar(&o.Node.PluginCacheDir, "plugin-cache-dir", "", "compiled plugin code cache (default <data-dir>/wasm-cache; nodes may share one)")
	fs.BoolVar(&o.NativeKV, "native-kv", false, "run the embedded KV plugin's Go code natively instead of WebAssembly, to measure what WebAssembly costs (same log, state and results; not needed in production)")
	fs.DurationVar(&o.Node.ApplyTimeout, "apply-timeout", o.Node.ApplyTimeout, "time limit of a write")
	fs.DurationVar(&o.Node.HeartbeatTimeout, "heartbeat-timeout", o.Node.HeartbeatTimeout, "Raft heartbeat timeout")
	fs.DurationVar(&o.Node.ElectionTimeout, "election-timeout", o.Node.ElectionTimeout, "Raft election timeout")
	fs.DurationVar(&o.Node.LeaderLeaseTimeout, "leader-lease-timeout", o.Node.LeaderLeaseTimeout, "Raft leader lease timeout (at most --heartbeat-timeout)")
	fs.Uint64Var(&o.Node.SnapshotThreshold, "snapshot-threshold", o.Node.SnapshotThreshold, "log entries between snapshots")
	fs.DurationVar(&o.Node.SnapshotInterval, "snapshot-interval", o.Node.SnapshotInterval, "how often the snapshot threshold is checked")
	fs.Uint64Var(&o.Node.TrailingLogs, "trailing-logs", o.Node.TrailingLogs, "log entries kept after a snapshot for slow followers")
	fs.IntVar(&o.Node.MaxAppendEntries, "max-append-entries", o.Node.MaxAppendEntries, "most entries in one AppendEntries RPC")
	fs.StringVar(&o.Node.LogStore, "log-store", o.Node.LogStore, "Raft log store of a new data directory: wal (raft-wal) or bolt (raft-boltdb); an existing one keeps its own")
	fs.bindAllEnv(seedEnv)

	pos, err := fs.parse(args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usagef("unexpected argument %q", pos[0])
	}
	if pages > 65536 {
		return nil, usagef("--plugin-memory-pages must be at most 65536")
	}
	o.Node.PluginMemoryPages = uint32(pages)
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	if o.HTTPAddr == "" {
		return nil, usagef("--http-addr is required")
	}
	if o.NodeID == "" {
		o.NodeID = defaultNodeID()
	}
	if err := transport.ValidateNodeID(o.NodeID); err != nil {
		return nil, usagef("--node-id: %v", err)
	}
	if o.DataDir == "" {
		o.DataDir = defaultDataDir(o.NodeID)
	}
	if o.AdvertiseAddr == "" {
		o.AdvertiseAddr = defaultAdvertise(o.RaftAddr)
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return nil, usageError{err.Error()}
	}
	if o.Node.LogStore != host.LogStoreWAL && o.Node.LogStore != host.LogStoreBolt {
		return nil, usagef("--log-store must be %s or %s", host.LogStoreWAL, host.LogStoreBolt)
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return nil, usagef("--log-format must be text or json")
	}
	return o, nil
}

// defaultNodeID is the short host name, or "node1".
func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil {
		return "node1"
	}
	h, _, _ = strings.Cut(h, ".")
	if h == "" || h == "localhost" || transport.ValidateNodeID(h) != nil {
		return "node1"
	}
	return h
}

func defaultDataDir(nodeID string) string { return filepath.Join("raftkv-data", nodeID) }

// defaultAdvertise returns "" (use the Raft address) unless the Raft address
// listens on every interface, where peers cannot dial it: then the host name.
func defaultAdvertise(raftAddr string) string {
	h, port, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
		return ""
	}
	name, err := os.Hostname()
	if err != nil || name == "" {
		return ""
	}
	return net.JoinHostPort(name, port)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseServeFlags(args, stdout)
	if err != nil {
		return err
	}
	return serve(ctx, o, newLogger(stderr, o.LogLevel, o.LogFormat))
}

// serve runs a node until ctx is cancelled, then shuts it down.
func serve(ctx context.Context, o *serveOptions, log *slog.Logger) (err error) {
	var tlsConfig *tls.Config
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// Listen before starting the node: a port in use fails fast.
	httpLn, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	defer httpLn.Close()
	var mgmtLn net.Listener
	if o.MgmtAddr != "" {
		if mgmtLn, err = net.Listen("tcp", o.MgmtAddr); err != nil {
			return fmt.Errorf("management listener: %w", err)
		}
		defer mgmtLn.Close()
	}

	var pprofLn net.Listener
	if o.PprofAddr != "" {
		if pprofLn, err = net.Listen("tcp", o.PprofAddr); err != nil {
			return fmt.Errorf("pprof listener: %w", err)
		}
		defer pprofLn.Close()
	}

	bootstrap := o.Join == ""
	if o.Bootstrap.set {
		bootstrap = o.Bootstrap.value
	}
	if bootstrap && o.Join != "" {
		log.Warn("--bootstrap is set: --join is ignored", "join", o.Join)
	}
	cfg := o.Node
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdvertiseAddr = o.NodeID, o.DataDir, o.RaftAddr, o.AdvertiseAddr
	cfg.Bootstrap = bootstrap
	cfg.DefaultPlugin = kvwasm.Module
	if o.NativeKV {
		cfg.NativePlugins = map[string]sdk.Plugin{plugin.HashOf(kvwasm.Module): kvstore.KV{}}
		log.Info("--native-kv: the embedded KV plugin runs as native Go code, not WebAssembly")
	}
	cfg.Logger = log
	node, err := host.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
		defer cancel()
		if cerr := node.Close(cctx); cerr != nil {
			log.Error("closing the node", "err", cerr)
			err = errors.Join(err, cerr)
		}
	}()

	apiCfg := o.API
	apiCfg.Token = o.Token
	apiCfg.Logger = log
	api := httpapi.New(node, apiCfg)

	errc := make(chan error, 3) // one per server: none blocks
	var wg sync.WaitGroup
	var servers []*http.Server
	start := func(name string, ln net.Listener, h http.Handler) {
		// No ReadTimeout or WriteTimeout: backups, restores and deploys are
		// long streams. The API bounds bodies itself with per-request read
		// deadlines (httpapi.Config.RequestTimeout for the whole body,
		// StreamIdleTimeout between reads of a stream's).
		srv := &http.Server{
			Handler:           h,
			TLSConfig:         tlsConfig.Clone(), // each server adds its ALPN protocols
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if tlsConfig != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s server: %w", name, err)
			}
		}()
	}
	start("HTTP", httpLn, api.Handler())
	if mgmtLn != nil {
		start("management", mgmtLn, api.MgmtHandler())
	}
	if pprofLn != nil {
		start("pprof", pprofLn, pprofHandler())
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
		defer cancel()
		for _, srv := range servers {
			if serr := srv.Shutdown(sctx); serr != nil {
				log.Warn("HTTP shutdown", "err", serr)
			}
		}
		wg.Wait()
	}()
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	log.Info("raftkv serving", "node_id", o.NodeID, "data_dir", o.DataDir,
		"http", scheme+"://"+httpLn.Addr().String(), "mgmt", addrOf(mgmtLn), "raft", node.Address())

	switch {
	case node.HasExistingState():
		log.Info("existing state found: rejoining the cluster with it", "data_dir", o.DataDir)
	case bootstrap:
		// host.New bootstrapped a single-node cluster.
	case o.Join != "":
		var jctx context.Context
		var cancel context.CancelFunc
		if o.JoinTimeout > 0 {
			jctx, cancel = context.WithTimeout(ctx, o.JoinTimeout)
		} else {
			jctx, cancel = context.WithCancel(ctx)
		}
		joinErr := make(chan error, 1)
		go func() { joinErr <- joinCluster(jctx, node, o, tlsConfig != nil, log) }()
		select {
		case err = <-joinErr:
		case err = <-errc:
			cancel()
			<-joinErr
		}
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil // shut down while joining
			}
			return err
		}
	default:
		log.Info("waiting to be added to a cluster: run 'raftkv join " + o.NodeID + " " + node.Address() + "' against a member (trust this node's key first)")
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

// pprofHandler serves net/http/pprof's endpoints (not on the API listeners:
// profiles are for operators, and they take no token).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// joinCluster adds node to the cluster through the member at o.Join, in the
// two steps a new voter needs: the member trusts the node's key (replicated)
// and returns the trust list, which the node accepts; then the member adds the
// node. Network errors and 5xx answers are retried until ctx ends.
func joinCluster(ctx context.Context, node *host.Node, o *serveOptions, tlsDefault bool, log *slog.Logger) error {
	c, err := newClient(o.Join, o.Token, o.CACert, 30*time.Second, tlsDefault)
	if err != nil {
		return fmt.Errorf("--join: %w", err)
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := joinOnce(ctx, c, node, o.NonVoter)
		if err == nil {
			log.Info("joined the cluster", "via", c.base)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("joining through %s: %w (last error: %v)", c.base, ctx.Err(), err)
		}
		if !retryable(err) {
			return fmt.Errorf("joining through %s: %w", c.base, err)
		}
		log.Warn("join failed, retrying", "via", c.base, "attempt", attempt, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func joinOnce(ctx context.Context, c *client, node *host.Node, nonVoter bool) error {
	var trust struct {
		Trust []string `json:"trust"`
	}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/trust", nil, map[string]string{"line": node.TrustLine()}, &trust); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	if err := node.AcceptTrust(trust.Trust); err != nil {
		return fmt.Errorf("accepting the cluster's trust list: %w", err)
	}
	req := host.JoinRequest{NodeID: node.ID(), Address: node.Address(), NonVoter: nonVoter}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/join", nil, req, &trust); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	return node.AcceptTrust(trust.Trust)
}
