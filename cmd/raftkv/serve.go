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
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/datadir"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/buildinfo"
	"github.com/raftkv/raftkv/internal/hostseam"
	"github.com/raftkv/raftkv/internal/sdknative"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
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

	Token           string
	TokenFile       string
	InsecureNoToken bool
	AllowedHosts    string
	TLSCert         string
	TLSKey          string
	CACert          string

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
and ignores --bootstrap, and --join too unless it finds itself a non-voter without --non-voter
(killed while joining): then it asks the leader to promote it. --bootstrap=false without --join
starts a node that waits to be added with 'raftkv join'. SIGINT or SIGTERM shut it down gracefully (a leader hands
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
	fs.StringVar(&o.Token, "token", "", "require 'Authorization: Bearer <token>' on the HTTP and management APIs and the profiler; also sent when joining (visible in ps: prefer --token-file)")
	fs.StringVar(&o.TokenFile, "token-file", "", "read --token from this file (one token of at least 16 bytes), so that it is not on the command line")
	fs.BoolVar(&o.InsecureNoToken, "insecure-no-token", false, "allow --http-addr, --mgmt-addr or --pprof-addr beyond loopback without a token: anyone who reaches them can write, trust keys and deploy plugins")
	fs.StringVar(&o.AllowedHosts, "allowed-hosts", "", "host names, comma-separated, a node without a token answers to besides IP addresses, localhost and its own host names (a Host header naming anything else is refused, against DNS rebinding)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM); needs --tls-key")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&o.CACert, "ca-cert", "", "CA certificate (PEM) to verify the --join member's HTTPS certificate (default: system roots)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	fs.BoolVar(&o.API.AccessLog, "access-log", false, "log every API request (method, path, status, bytes, duration, client) at info level; health probes are not logged")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "serve Go's profiler (/debug/pprof/) on this address, behind the token; empty disables it")
	fs.Int64Var(&o.API.MaxBodyBytes, "max-body-bytes", o.API.MaxBodyBytes, "largest request body accepted (commands, transactions); values, plugin modules and restores have their own limits")
	fs.DurationVar(&o.API.RequestTimeout, "request-timeout", o.API.RequestTimeout, "time limit of one API request")
	fs.DurationVar(&o.API.StreamIdleTimeout, "stream-idle-timeout", o.API.StreamIdleTimeout, "longest pause in the body of a plugin deploy or a restore")

	var pages uint
	fs.UintVar(&pages, "plugin-memory-pages", uint(o.Node.PluginMemoryPages), "memory cap of a plugin instance, in 64 KiB pages")
	fs.DurationVar(&o.Node.PluginCallTimeout, "plugin-call-timeout", o.Node.PluginCallTimeout, "wall-clock limit of one plugin call (a breach while applying stops the node); a metered call gets at least its fuel budget / 1,000,000 seconds")
	fs.DurationVar(&o.Node.DigestCheckInterval, "digest-check-interval", o.Node.DigestCheckInterval, "how often the leader checks that every member's state is the same at the same log index (0 disables; see docs/operations.md)")
	fs.IntVar(&o.Node.QueryInstances, "query-instances", o.Node.QueryInstances, "plugin instances per plugin serving queries concurrently")
	fs.StringVar(&o.Node.PluginCacheDir, "plugin-cache-dir", "", "compiled plugin code cache (default <data-dir>/wasm-cache; nodes may share one)")
	fs.Int64Var(&o.Node.PluginCacheMaxBytes, "plugin-cache-max-bytes", o.Node.PluginCacheMaxBytes, "bound of --plugin-cache-dir: past it the oldest compiled modules are removed (0: unbounded)")
	fs.BoolVar(&o.NativeKV, "native-kv", false, "run the embedded KV plugin's Go code natively instead of WebAssembly, to measure what WebAssembly costs (same log, state and results; not needed in production)")
	fs.DurationVar(&o.Node.ApplyTimeout, "apply-timeout", o.Node.ApplyTimeout, "time limit of a write")
	fs.DurationVar(&o.Node.HeartbeatTimeout, "heartbeat-timeout", o.Node.HeartbeatTimeout, "Raft heartbeat timeout")
	fs.DurationVar(&o.Node.ElectionTimeout, "election-timeout", o.Node.ElectionTimeout, "Raft election timeout")
	fs.DurationVar(&o.Node.LeaderLeaseTimeout, "leader-lease-timeout", o.Node.LeaderLeaseTimeout, "Raft leader lease timeout (at most --heartbeat-timeout)")
	fs.Uint64Var(&o.Node.SnapshotThreshold, "snapshot-threshold", o.Node.SnapshotThreshold, "log entries between snapshots")
	fs.DurationVar(&o.Node.SnapshotInterval, "snapshot-interval", o.Node.SnapshotInterval, "how often the snapshot threshold is checked")
	fs.Uint64Var(&o.Node.TrailingLogs, "trailing-logs", o.Node.TrailingLogs, "log entries kept after a snapshot for slow followers")
	fs.IntVar(&o.Node.MaxAppendEntries, "max-append-entries", o.Node.MaxAppendEntries, "most entries in one AppendEntries RPC")
	fs.StringVar(&o.Node.LogStore, "log-store", o.Node.LogStore, "Raft log store of a new data directory: bolt (raft-boltdb) or wal (raft-wal: faster, experimental upstream); an existing one keeps its own")
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
	for _, l := range []struct{ flag, addr string }{
		{"--http-addr", o.HTTPAddr}, {"--mgmt-addr", o.MgmtAddr}, {"--pprof-addr", o.PprofAddr},
		{"--raft-addr", o.RaftAddr}, {"--advertise-addr", o.AdvertiseAddr},
	} {
		if err := checkListenAddr(l.addr); l.addr != "" && err != nil {
			return nil, usagef("%s %q: %v", l.flag, l.addr, err)
		}
	}
	switch {
	case o.API.MaxBodyBytes < 1:
		return nil, usagef("--max-body-bytes must be at least 1 (it is %d)", o.API.MaxBodyBytes)
	case o.API.RequestTimeout <= 0:
		return nil, usagef("--request-timeout must be positive (it is %v)", o.API.RequestTimeout)
	case o.API.StreamIdleTimeout <= 0:
		return nil, usagef("--stream-idle-timeout must be positive (it is %v)", o.API.StreamIdleTimeout)
	}
	if o.NodeID == "" {
		o.NodeID = defaultNodeID()
	}
	if err := trust.ValidateNodeID(o.NodeID); err != nil {
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
	if o.Join != "" {
		if err := validateJoin(o.Join); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	if o.TokenFile != "" {
		if o.Token != "" {
			return nil, usagef("--token and --token-file are exclusive (RAFTKV_TOKEN sets --token)")
		}
		tok, err := kvclient.ReadTokenFile(o.TokenFile)
		if err != nil {
			return nil, usageError{"--token-file: " + err.Error()}
		}
		o.Token = tok
	}
	if err := checkExposure(o); err != nil {
		return nil, err
	}
	return o, nil
}

// checkExposure refuses a node that listens beyond loopback on an HTTP
// address (the API, the management API, the profiler) with no token, unless
// --insecure-no-token says that is meant.
func checkExposure(o *serveOptions) error {
	if o.Token != "" || o.InsecureNoToken {
		return nil
	}
	for _, l := range []struct{ flag, addr string }{
		{"--http-addr", o.HTTPAddr}, {"--mgmt-addr", o.MgmtAddr}, {"--pprof-addr", o.PprofAddr},
	} {
		if l.addr != "" && !loopbackOnly(l.addr) {
			return usagef("%s %s listens beyond loopback and no token is set: anyone who reaches it could write, trust keys "+
				"and deploy plugins. Set a token with --token-file (or RAFTKV_TOKEN), or pass --insecure-no-token if that is meant "+
				"(see SECURITY.md)", l.flag, l.addr)
		}
	}
	return nil
}

// checkListenAddr checks that addr is host:port (the host may be empty:
// every interface).
func checkListenAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && ae.Err == "missing port in address" {
			return errors.New("missing port (want host:port, such as 127.0.0.1:8080)")
		}
		return fmt.Errorf("want host:port: %w", err)
	}
	return nil
}

// loopbackOnly reports whether a listen address accepts only local
// connections: a loopback IP address or localhost. An empty host, 0.0.0.0,
// :: and any other name listen beyond.
func loopbackOnly(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// allowedHosts are the names a node without a token answers to in the Host
// header (httpapi.Config.AllowedHosts): --allowed-hosts, the host names in
// its listen and advertised addresses, and the machine's host name (Docker
// Compose and --join address nodes by it).
func allowedHosts(o *serveOptions) []string {
	var names []string
	for _, n := range strings.Split(o.AllowedHosts, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	for _, addr := range []string{o.HTTPAddr, o.MgmtAddr, o.AdvertiseAddr, o.RaftAddr} {
		if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
			names = append(names, h)
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		short, _, _ := strings.Cut(h, ".")
		names = append(names, h, short)
	}
	return names
}

// validateJoin checks a --join value before anything is created: an http or
// https URL, or host:port, with an explicit port (no silent :80).
func validateJoin(addr string) error {
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--join %q: %v", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("--join %q: want a member's HTTP or management address, http://host:port or host:port", addr)
	}
	if u.Port() == "" {
		return fmt.Errorf("--join %q has no port: give the member's HTTP (--http-addr) or management (--mgmt-addr) port, as host:port", addr)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("--join %q: port %q is not a port number", addr, u.Port())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("--join %q: want only scheme://host:port", addr)
	}
	return nil
}

// defaultNodeID is the short host name, or "node1".
func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil {
		return "node1"
	}
	h, _, _ = strings.Cut(h, ".")
	if h == "" || h == "localhost" || trust.ValidateNodeID(h) != nil {
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
	// Every file the node creates is its owner's alone: hashicorp/raft
	// creates snapshots with os.Create, raft-wal its segments with 0644.
	// host.New fixes what an earlier run left (datadir.FixModes).
	syscall.Umask(0o077)
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
	cfg.Token = o.Token // forwarded administrative requests carry it (host/peerrpc)
	cfg.DefaultPlugin = kvwasm.Module
	if o.NativeKV {
		hostseam.SetNativePlugins(&cfg, map[string]plugin.Code{plugin.HashOf(kvwasm.Module): sdknative.Code(kvplugin.KV{})})
		log.Info("--native-kv: the embedded KV plugin runs as native Go code, not WebAssembly")
	}
	cfg.Logger = log
	// A configuration raft or the node would refuse fails before anything
	// is created.
	if err := cfg.Validate(); err != nil {
		return err
	}
	// The data directory's lock first: a second node on the same directory
	// fails here, naming the first, before it opens a port or a file.
	lock, err := datadir.Acquire(o.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close() // the node's Close releases it first; idempotent
	if bootstrap && !o.Bootstrap.set {
		if others := host.FormerMember(o.DataDir, o.NodeID); len(others) > 0 {
			return fmt.Errorf("the data dir %s has no Raft log but its trust list names other members (%s): it was a member of a cluster whose log was moved away; "+
				"start it with --join <a member's address> to catch up with that cluster, or with --bootstrap=true to start a new one", o.DataDir, strings.Join(others, ", "))
		}
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

	cfg.DataDirLock = lock
	cfg.APIAddress = apiAddress(tlsConfig != nil, httpLn.Addr())
	if mgmtLn != nil {
		cfg.MgmtAddress = reachableAddress(mgmtLn.Addr())
	}
	node, err := host.New(cfg)
	if err != nil {
		return err
	}
	errc := make(chan error, 3) // one per server: none blocks
	var wg sync.WaitGroup
	var servers []*http.Server
	defer func() {
		if serr := shutdown(log, o.ShutdownTimeout, servers, &wg, node); serr != nil {
			err = errors.Join(err, serr)
		}
	}()

	apiCfg := o.API
	apiCfg.Token = o.Token
	apiCfg.Logger = log
	apiCfg.AllowedHosts = allowedHosts(o)
	api := httpapi.New(node, apiCfg)

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
		start("pprof", pprofLn, api.Protect(pprofHandler()))
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	bi := buildinfo.Get()
	log.Info("raftkv serving", "node_id", o.NodeID, "data_dir", o.DataDir,
		"http", scheme+"://"+httpLn.Addr().String(), "mgmt", addrOf(mgmtLn), "raft", node.Address(),
		"version", bi.Version, "commit", bi.Commit, "build_time", bi.BuildTime)

	switch {
	case node.HasExistingState():
		log.Info("existing state found: restarting with it, in the cluster its Raft configuration names", "data_dir", o.DataDir)
		if o.Join != "" {
			log.Info("--join does not join: the data dir already belongs to a cluster, the one its Raft configuration names "+
				"(a non-voter started without --non-voter asks its leader to promote it); to join the cluster at --join "+
				"instead, start with an empty data dir", "join", o.Join, "data_dir", o.DataDir)
		}
		if o.Join != "" && !bootstrap && !o.NonVoter {
			// A node killed after it was added as a non-voter but before its
			// promotion finds itself a non-voter: it asks the leader to
			// promote it, as its first join would have.
			pctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); promoteSelf(pctx, node, log) }()
			defer func() { cancel(); <-done }() // runs before shutdown closes the node
		}
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

// shutdown stops the HTTP servers and the node within timeout, whatever
// they wait for (a request, a peer that does not answer, Raft, a plugin): if
// they are not done by then, it returns an error and the process exits
// anyway. The Raft log is crash-safe (internal/crashtest), so an exit
// without a clean close loses nothing acknowledged. The servers get half the
// time, then lose their remaining connections; the node gets the rest.
func shutdown(log *slog.Logger, timeout time.Duration, servers []*http.Server, wg *sync.WaitGroup, node *host.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stage := make(chan string, 2)
	done := make(chan error, 1)
	go func() {
		stage <- "stopping the HTTP servers"
		hctx, hcancel := context.WithTimeout(ctx, timeout/2)
		defer hcancel()
		for _, srv := range servers {
			if err := srv.Shutdown(hctx); err != nil {
				log.Warn("HTTP shutdown: closing the remaining connections", "err", err)
				srv.Close()
			}
		}
		wg.Wait()
		stage <- "closing the node"
		done <- node.Close(ctx)
	}()
	doing := ""
	for {
		select {
		case doing = <-stage:
		case err := <-done:
			if err != nil {
				log.Error("closing the node", "err", err)
			}
			return err
		case <-ctx.Done():
			log.Error("shutdown did not finish in time: exiting anyway", "timeout", timeout, "while", doing)
			return fmt.Errorf("shutdown did not finish within --shutdown-timeout %v (still %s)", timeout, doing)
		}
	}
}

// speaksSSH reports whether the server at base (scheme://host:port) greets
// a new connection with an SSH banner, as a raftkv Raft port does.
func speaksSSH(ctx context.Context, base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	_, err = io.ReadFull(conn, buf)
	return err == nil && string(buf) == "SSH-"
}

// pprofHandler serves net/http/pprof's endpoints, on their own listener
// (profiles are for operators), behind the API's token (API.Protect):
// /debug/pprof/cmdline shows the command line, which may hold --token.
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
		// No HTTP answer came: the port may not speak HTTP at all.
		if ae := (*apiError)(nil); (!errors.As(err, &ae) || ae.Status == 0) && speaksSSH(ctx, c.base) {
			return fmt.Errorf("--join %s is a Raft (SSH) port, not an HTTP one: give the member's HTTP (--http-addr) or management (--mgmt-addr) address", o.Join)
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
		Trust  []string `json:"trust"`
		Voters []string `json:"voters"`
	}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/trust", nil, map[string]string{"line": node.TrustLine()}, &trust); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	// Until the leader adds it, the node takes Raft RPCs only from the
	// voters the member named, not from any key the trust list holds.
	node.ExpectLeaders(trust.Voters)
	if err := node.AcceptTrust(trust.Trust); err != nil {
		return fmt.Errorf("accepting the cluster's trust list: %w", err)
	}
	req := host.JoinRequest{NodeID: node.ID(), Address: node.Address(), NonVoter: nonVoter}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/join", nil, req, &trust); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	return node.AcceptTrust(trust.Trust)
}

// promoteSelfPoll is how often promoteSelf looks at the node's suffrage.
const promoteSelfPoll = time.Second

// promoteSelf makes a node restarted on its data with --join (and without
// --non-voter) a voter when its latest configuration lists it as a
// non-voter: a node killed after the leader added it as a non-voter, before
// its promotion, would otherwise stay one. It sends its join request again,
// through the leader it follows (host.Node.Join: the leader proves the node's
// key and promotes it once its log has caught up), until the node is a voter
// or ctx ends. A node the configuration does not list yet is waited for.
func promoteSelf(ctx context.Context, node *host.Node, log *slog.Logger) {
	backoff := promoteSelfPoll
	logged := false
	for {
		switch node.Suffrage() {
		case "voter":
			return
		case "nonvoter":
			if !logged {
				log.Info("this node is a non-voter but was started without --non-voter: asking the leader to promote it")
				logged = true
			}
			req := host.JoinRequest{NodeID: node.ID(), Address: node.Address()}
			jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			_, err := node.Join(jctx, req)
			cancel()
			if err == nil {
				log.Info("promoted to voter")
				return
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("promotion to voter failed, retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(promoteSelfPoll):
		}
	}
}
