package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/trust"
)

// DefaultDialTimeout is used when Config.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// SSH channel types. Every raft stream is a "raft" channel; every RPC
// channel carries a sequence of request/response exchanges.
const (
	chanRaft = "raft"
	chanRPC  = "rpc"
)

// Keep-alive of every SSH connection: a connection whose peer does not
// answer a keep-alive request within keepAliveTimeout is closed, so a peer
// that vanished without a FIN is noticed and the next Dial redials.
const (
	keepAliveInterval = 5 * time.Second
	keepAliveTimeout  = 15 * time.Second
)

// Algorithm preferences. Both are AEAD ciphers; aes128-gcm comes first
// because it is the faster of the two on CPUs with AES-NI and CLMUL (see
// BenchmarkCipher). The key exchange is only paid once per connection, so
// the post-quantum hybrid comes first.
var (
	defaultCiphers      = []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM}
	defaultKeyExchanges = []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519}
)

const sshVersion = "SSH-2.0-raftkv"

// Log attribute keys.
const (
	logNode        = "node"
	logPeer        = "peer"
	logAddr        = "addr"
	logRemote      = "remote"
	logUser        = "user"
	logFingerprint = "fingerprint"
	logReason      = "reason"
	logMethod      = "method"
	logPanic       = "panic"
	logStack       = "stack"
	logCount       = "count"
	logErr         = "err"
)

// Config configures a Transport.
type Config struct {
	// NodeID is this node's ID. It is the SSH user name the node dials with
	// and the ID peers must bind to Signer's public key in their Trust.
	NodeID string
	// BindAddr is the TCP address to listen on, such as "127.0.0.1:7000" or
	// ":7000" (with Network set, an address of that network). When its host
	// is a specific IP, outgoing TCP connections use that IP as their source
	// address.
	BindAddr string
	// AdvertiseAddr is the address peers dial to reach this node; Addr
	// returns it, so it is also raft's ServerAddress for this node. Empty
	// means the listener's address, whose IP must then be specific.
	AdvertiseAddr string
	// Signer is the node key (LoadOrCreateKey): the SSH host key and the
	// client key.
	Signer ssh.Signer
	// Trust decides which keys are accepted and which node each belongs to.
	Trust *trust.Trust
	// Resolve returns the ID of the node expected at a dialled address (for
	// raft, the ServerID of the ServerAddress in the configuration). The peer
	// must then prove it holds a key Trust binds to that ID.
	Resolve func(addr string) (nodeID string, ok bool)
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds a TCP connect plus SSH handshake, in both
	// directions. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// RPCHandler serves Call from peers; nil answers every call with a
	// RemoteError.
	RPCHandler RPCHandler
	// Network is what the Transport listens on and dials through; nil means
	// TCP. Tests set it to an in-memory network (internal/memnet) so that a
	// cluster runs the whole SSH transport without sockets. BindAddr,
	// AdvertiseAddr and the addresses Resolve is asked about are then
	// addresses of that network; BindAddr's host does not pick a source
	// address.
	Network Network

	// ciphers and keyExchanges override the defaults (benchmarks compare
	// algorithms with them).
	ciphers, keyExchanges []string
}

// Network is a stream network other than TCP for a Transport (see
// Config.Network). Its connections must honour deadlines and Close must
// wake blocked reads and writes, as a TCP connection's do.
type Network interface {
	// Listen listens on addr, a host:port of the network.
	Listen(addr string) (net.Listener, error)
	// DialContext connects to addr, giving up when ctx ends.
	DialContext(ctx context.Context, addr string) (net.Conn, error)
}

// Validate reports every problem with c, wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if err := trust.ValidateNodeID(c.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("NodeID: %w", err))
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("BindAddr %q: %w", c.BindAddr, err))
	}
	if c.AdvertiseAddr != "" {
		if err := CheckAdvertisable(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("AdvertiseAddr: %w", err))
		}
	}
	if c.Signer == nil {
		errs = append(errs, errors.New("Signer is nil"))
	}
	if c.Trust == nil {
		errs = append(errs, errors.New("Trust is nil"))
	}
	if c.Resolve == nil {
		errs = append(errs, errors.New("Resolve is nil"))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %v is negative", c.DialTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// CheckAdvertisable reports whether addr is an address peers can dial: a
// host and a port, not 0, not an unspecified IP (0.0.0.0, ::). It is the
// one check of an advertised address; host.Config.Validate uses it too.
func CheckAdvertisable(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "" || port == "" || port == "0" {
		return fmt.Errorf("%q needs a host and a port", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q is not an address peers can dial", addr)
	}
	return nil
}

// Transport carries a node's raft streams and RPCs over SSH. It implements
// raft.StreamLayer: wrap it with raft.NewNetworkTransportWithConfig. Note
// that closing raft's NetworkTransport closes the Transport too.
type Transport struct {
	cfg       Config
	log       *slog.Logger
	ln        net.Listener
	addr      net.Addr     // advertised
	localAddr *net.TCPAddr // source address of outgoing connections; nil: any
	sshConfig ssh.Config
	accepted  chan net.Conn // raft streams opened by peers

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
	live    map[io.Closer]struct{} // TCP conns in handshake and SSH connections
	out     map[string]*dialState  // outgoing connection per remote address

	failedLog logLimit // failed and refused incoming handshakes
}

// sshConn is an authenticated SSH connection in either direction.
type sshConn struct {
	conn     ssh.Conn
	gate     *gateConn     // the TCP connection under conn
	nodeID   string        // the peer, as proven in the handshake
	key      ssh.PublicKey // the key it proved
	addr     string        // dialled address (outgoing only)
	outgoing bool
	dead     chan struct{}  // closed when the connection has ended
	idle     chan *chanConn // idle RPC channels (outgoing only)

	mu       sync.Mutex
	opening  int           // OpenChannel calls in progress
	finished bool          // serveConn is done: no new OpenChannel calls
	opened   chan struct{} // signalled when an OpenChannel call returns
}

func newSSHConn(conn ssh.Conn, gate *gateConn, nodeID string, key ssh.PublicKey) *sshConn {
	return &sshConn{
		conn:   conn,
		gate:   gate,
		nodeID: nodeID,
		key:    key,
		dead:   make(chan struct{}),
		opened: make(chan struct{}, 1),
	}
}

func (sc *sshConn) Close() error { return sc.conn.Close() }
func (sc *sshConn) isDead() bool { return isClosed(sc.dead) }

// broken reports whether the connection has failed or ended.
func (sc *sshConn) broken() bool { return sc.gate.failed.Load() || sc.isDead() }

// gateConn is the TCP connection under an SSH connection. It works around
// a race in x/crypto/ssh: when the connection's read loop fails, the mux
// closes every channel it knows, but a channel whose OpenChannel call
// registers just after that, and whose open message is still accepted for
// writing, is never closed, so the call blocks forever.
//
// On the first failed read, before x/crypto/ssh sees the error, gateConn
// fails all further writes and (through onFail) makes the SSH transport
// write once, so that it records a write error: an OpenChannel that
// registers after the mux has closed its channels then fails when it sends
// its open message. No OpenChannel is started on a connection whose read
// has failed either. What remains is a key re-exchange in progress at the
// moment of failure, which delays recording the write error; serveConn
// bounds the damage of that case (see goOpen).
type gateConn struct {
	net.Conn
	failed atomic.Bool
	onFail atomic.Pointer[func()]
}

var errReadFailed = errors.New("transport: connection read failed")

func (g *gateConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if err != nil && !g.failed.Swap(true) {
		if f := g.onFail.Load(); f != nil {
			(*f)()
		}
	}
	return n, err
}

func (g *gateConn) Write(p []byte) (int, error) {
	if g.failed.Load() {
		return 0, errReadFailed
	}
	return g.Conn.Write(p)
}

// armGate makes a read failure on sc's TCP connection record a write error
// in x/crypto/ssh right away (see gateConn). The write runs on its own
// goroutine and is waited for at most gateWait: during a key re-exchange
// with many queued packets it would wait for the exchange, which needs the
// very read loop that is calling it.
func (t *Transport) armGate(sc *sshConn) {
	f := func() {
		done := make(chan struct{})
		if !t.goFunc(func() {
			defer close(done)
			sc.conn.SendRequest("failed@raftkv", false, nil)
		}) {
			return
		}
		timer := time.NewTimer(gateWait)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
		}
	}
	sc.gate.onFail.Store(&f)
}

const gateWait = 100 * time.Millisecond

// dialState is the outgoing connection to one address, or its dial in
// progress; sc and err are set before ready is closed.
type dialState struct {
	addr, nodeID string
	ready        chan struct{}
	sc           *sshConn
	err          error
}

// advertiseAddr is the net.Addr returned by Addr.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// New validates cfg, listens on cfg.BindAddr and starts accepting peers.
func New(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		ln  net.Listener
		err error
	)
	if cfg.Network != nil {
		ln, err = cfg.Network.Listen(cfg.BindAddr)
	} else {
		ln, err = net.Listen("tcp", cfg.BindAddr)
	}
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = ln.Addr().String()
		if err := CheckAdvertisable(adv); err != nil {
			ln.Close()
			return nil, fmt.Errorf("%w: BindAddr %q: %w; set AdvertiseAddr", ErrInvalidConfig, cfg.BindAddr, err)
		}
	}
	t := &Transport{
		cfg:       cfg,
		log:       logger.With(logNode, cfg.NodeID),
		ln:        ln,
		addr:      advertiseAddr(adv),
		accepted:  make(chan net.Conn),
		live:      make(map[io.Closer]struct{}),
		out:       make(map[string]*dialState),
		failedLog: logLimit{burst: 20, window: 10 * time.Second},
	}
	if host, _, _ := net.SplitHostPort(cfg.BindAddr); host != "" && cfg.Network == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			t.localAddr = &net.TCPAddr{IP: ip}
		}
	}
	t.sshConfig = ssh.Config{KeyExchanges: defaultKeyExchanges, Ciphers: defaultCiphers}
	if cfg.ciphers != nil {
		t.sshConfig.Ciphers = cfg.ciphers
	}
	if cfg.keyExchanges != nil {
		t.sshConfig.KeyExchanges = cfg.keyExchanges
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.goFunc(t.acceptLoop)
	t.goFunc(t.watchTrust)
	return t, nil
}

// Addr returns the advertised address (net.Listener).
func (t *Transport) Addr() net.Addr { return t.addr }

// Accept returns the next raft stream a peer opened (net.Listener).
func (t *Transport) Accept() (net.Conn, error) {
	select {
	case c := <-t.accepted:
		return c, nil
	case <-t.ctx.Done():
		return nil, ErrClosed
	}
}

// Dial opens a raft stream to the node at address (raft.StreamLayer). The
// stream is a new SSH channel on the connection to that address, which is
// dialled first if there is none or it has died. timeout bounds the whole
// call; zero means no bound beyond DialTimeout for a new connection.
func (t *Transport) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	_, c, err := t.open(ctx, string(address), chanRaft)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Close stops the listener, closes every connection and stream and waits for
// every goroutine of the Transport, including running RPC handlers (whose
// context is cancelled). It is idempotent. It must not be called from an
// RPCHandler.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closing = true
		live := make([]io.Closer, 0, len(t.live))
		for c := range t.live {
			live = append(live, c)
		}
		t.mu.Unlock()
		t.cancel()
		t.closeErr = t.ln.Close()
		for _, c := range live {
			c.Close()
		}
		t.wg.Wait()
	})
	return t.closeErr
}

// goFunc runs f in a goroutine that Close waits for. It returns false, not
// running f, once Close has begun.
func (t *Transport) goFunc(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.goLocked(f)
}

func (t *Transport) goLocked(f func()) bool {
	if t.closing {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// track registers c to be closed by Close; it returns false once Close has
// begun.
func (t *Transport) track(c io.Closer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.live[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c io.Closer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.live, c)
}

func (t *Transport) acceptLoop() {
	var backoff time.Duration
	for {
		raw, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("transport: accept failed", logErr, err)
			select {
			case <-time.After(backoff):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		if !t.goFunc(func() { t.serveIncoming(raw) }) {
			raw.Close()
			return
		}
	}
}

// serveIncoming runs the server side of the SSH handshake on raw and then
// serves the connection until it ends.
func (t *Transport) serveIncoming(raw net.Conn) {
	if !t.track(raw) {
		raw.Close()
		return
	}
	raw.SetDeadline(time.Now().Add(t.cfg.DialTimeout))
	var (
		refusal string        // why the last offered key was refused
		proven  ssh.PublicKey // the key whose signature verified
	)
	conf := &ssh.ServerConfig{
		Config:        t.sshConfig,
		ServerVersion: sshVersion,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if err := t.authorize(meta.User(), key); err != nil {
				refusal = err.Error()
				return nil, err
			}
			return &ssh.Permissions{}, nil
		},
		VerifiedPublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
			if err := t.authorize(meta.User(), key); err != nil { // the Trust may have changed since
				refusal = err.Error()
				return nil, err
			}
			proven = key
			return perms, nil
		},
	}
	conf.AddHostKey(t.cfg.Signer)
	gate := &gateConn{Conn: raw}
	conn, chans, reqs, err := ssh.NewServerConn(gate, conf)
	t.untrack(raw)
	if err != nil {
		raw.Close()
		if t.ctx.Err() != nil {
			return
		}
		ok, dropped := t.failedLog.allow(time.Now())
		if !ok {
			return
		}
		if dropped > 0 {
			t.log.Warn("transport: incoming SSH connections failed or refused without a log line (too many)", "count", dropped)
		}
		if refusal != "" {
			t.log.Warn("transport: refused incoming SSH connection", logRemote, raw.RemoteAddr().String(), logReason, refusal)
		} else {
			t.log.Info("transport: incoming SSH handshake failed", logRemote, raw.RemoteAddr().String(), logErr, err)
		}
		return
	}
	raw.SetDeadline(time.Time{})
	sc := newSSHConn(conn, gate, conn.User(), proven)
	t.armGate(sc)
	t.register(sc)
	t.log.Debug("transport: peer connected", logPeer, sc.nodeID, logRemote, raw.RemoteAddr().String())
	t.serveConn(sc, chans, reqs)
}

// authorize reports whether user may log in with key: the Trust must bind
// key to exactly that node ID.
func (t *Transport) authorize(user string, key ssh.PublicKey) error {
	id, why := t.cfg.Trust.Lookup(key)
	switch {
	case why != "":
		return fmt.Errorf("key %s (offered for node %q) %s", ssh.FingerprintSHA256(key), user, why)
	case id != user:
		return fmt.Errorf("key %s belongs to node %q, not to node %q", ssh.FingerprintSHA256(key), id, user)
	}
	return nil
}

// register tracks sc and starts its keep-alive. Once Close has begun it
// closes sc instead; the caller still runs serveConn, which then only
// drains what the connection left.
func (t *Transport) register(sc *sshConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		sc.conn.Close()
		return
	}
	t.live[sc] = struct{}{}
	t.goLocked(func() { t.keepAlive(sc) })
}

// serveConn handles the channel opens and global requests of sc until the
// connection ends, then forgets it.
func (t *Transport) serveConn(sc *sshConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	for chans != nil || reqs != nil {
		select {
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			t.handleChannel(sc, nc)
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			if r.WantReply { // keep-alives; no global request is served
				r.Reply(false, nil)
			}
		}
	}
	err := sc.conn.Wait()
	t.mu.Lock()
	delete(t.live, sc)
	if d := t.out[sc.addr]; sc.outgoing && d != nil && d.sc == sc {
		delete(t.out, sc.addr)
	}
	t.mu.Unlock()
	close(sc.dead)
	drainIdle(sc)
	t.waitOpens(sc)
	if t.ctx.Err() == nil {
		t.log.Debug("transport: connection ended", logPeer, sc.nodeID, logRemote, sc.conn.RemoteAddr().String(), logErr, err)
	}
}

func (t *Transport) handleChannel(sc *sshConn, nc ssh.NewChannel) {
	if sc.outgoing {
		nc.Reject(ssh.Prohibited, "raftkv: only the dialling node opens channels")
		return
	}
	if id, ok := t.cfg.Trust.NodeFor(sc.key); !ok || id != sc.nodeID {
		nc.Reject(ssh.Prohibited, "raftkv: node is no longer trusted")
		t.log.Warn("transport: closing connection: peer key no longer trusted", logPeer, sc.nodeID, logFingerprint, ssh.FingerprintSHA256(sc.key))
		sc.conn.Close()
		return
	}
	var serve func()
	switch nc.ChannelType() {
	case chanRaft:
		serve = func() { t.acceptStream(sc, nc) }
	case chanRPC:
		serve = func() { t.serveRPC(sc, nc) }
	default:
		nc.Reject(ssh.UnknownChannelType, "raftkv: unknown channel type")
		return
	}
	if !t.goFunc(serve) {
		nc.Reject(ssh.ResourceShortage, "raftkv: shutting down")
	}
}

// acceptStream accepts a raft channel and hands it to Accept.
func (t *Transport) acceptStream(sc *sshConn, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	c, err := newChanConn(ch, reqs, sc.conn.LocalAddr(), sc.conn.RemoteAddr(), t.ctx.Done(), t.goFunc)
	if err != nil {
		return
	}
	c.peer = sc.nodeID
	select {
	case t.accepted <- c:
	case <-t.ctx.Done():
		c.Close()
	}
}

func (t *Transport) keepAlive(sc *sshConn) {
	tick := time.NewTicker(keepAliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-sc.dead:
			return
		case <-t.ctx.Done():
			return
		}
		timer := time.AfterFunc(keepAliveTimeout, func() {
			t.log.Warn("transport: peer does not answer keep-alives; closing connection", logPeer, sc.nodeID, logRemote, sc.conn.RemoteAddr().String())
			sc.conn.Close()
		})
		_, _, err := sc.conn.SendRequest("keepalive@openssh.com", true, nil)
		timer.Stop()
		if err != nil { // the connection can no longer send: end it
			sc.conn.Close()
			return
		}
	}
}

// watchTrust closes connections whose peer key stops being trusted for the
// peer's node ID (Revoke, Remove, a reloaded authorized_keys file).
func (t *Transport) watchTrust() {
	changed := t.cfg.Trust.Changed()
	for {
		select {
		case <-changed:
		case <-t.ctx.Done():
			return
		}
		changed = t.cfg.Trust.Changed() // before the sweep, so no change is missed
		t.mu.Lock()
		var conns []*sshConn
		for c := range t.live {
			if sc, ok := c.(*sshConn); ok {
				conns = append(conns, sc)
			}
		}
		t.mu.Unlock()
		for _, sc := range conns {
			if id, ok := t.cfg.Trust.NodeFor(sc.key); !ok || id != sc.nodeID {
				t.log.Warn("transport: closing connection: peer key no longer trusted",
					logPeer, sc.nodeID, logRemote, sc.conn.RemoteAddr().String(), logFingerprint, ssh.FingerprintSHA256(sc.key))
				sc.conn.Close()
			}
		}
	}
}

// open returns a new channel of type typ to the node at addr, for RPC an
// idle one when there is one.
func (t *Transport) open(ctx context.Context, addr, typ string) (*sshConn, *chanConn, error) {
	for attempt := 0; ; attempt++ {
		sc, err := t.conn(ctx, addr)
		if err != nil {
			return nil, nil, err
		}
		if typ == chanRPC {
			if c := takeIdle(sc); c != nil {
				return sc, c, nil
			}
		}
		ch, reqs, err := t.openChannel(ctx, sc, typ)
		if err == nil {
			c, err := newChanConn(ch, reqs, sc.conn.LocalAddr(), sc.conn.RemoteAddr(), t.ctx.Done(), t.goFunc)
			return sc, c, err
		}
		var rejected *ssh.OpenChannelError
		if errors.As(err, &rejected) || errors.Is(err, ErrClosed) || ctx.Err() != nil || attempt > 0 {
			return nil, nil, fmt.Errorf("transport: open %s channel to %s (node %q): %w", typ, addr, sc.nodeID, err)
		}
		// The connection broke before the channel existed, so nothing was
		// sent on it: drop the connection and dial once more.
		t.drop(sc)
	}
}

// drop closes sc and makes the next conn for its address dial anew.
func (t *Transport) drop(sc *sshConn) {
	t.mu.Lock()
	if d := t.out[sc.addr]; d != nil && d.sc == sc {
		delete(t.out, sc.addr)
	}
	t.mu.Unlock()
	sc.conn.Close()
}

// errConnLost reports a connection that failed before a channel was opened
// on it; open then dials again.
var errConnLost = errors.New("connection lost")

// openChannel opens a channel on sc, giving up when ctx ends or the
// connection fails; a channel that is confirmed after that is closed.
func (t *Transport) openChannel(ctx context.Context, sc *sshConn, typ string) (ssh.Channel, <-chan *ssh.Request, error) {
	type result struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	var (
		mu        sync.Mutex
		abandoned bool
		res       = make(chan result, 1)
	)
	if sc.broken() {
		return nil, nil, errConnLost
	}
	ok := sc.goOpen(func() {
		var (
			ch   ssh.Channel
			reqs <-chan *ssh.Request
			err  = errConnLost
		)
		if !sc.broken() { // checked again right before the call: see gateConn
			ch, reqs, err = sc.conn.OpenChannel(typ, nil)
		}
		mu.Lock()
		if !abandoned {
			res <- result{ch, reqs, err}
			mu.Unlock()
			return
		}
		mu.Unlock()
		if err == nil {
			ch.Close()
			ssh.DiscardRequests(reqs) // returns once the channel is closed
		}
	})
	if !ok {
		return nil, nil, errConnLost
	}
	var cause error
	select {
	case r := <-res:
		return r.ch, r.reqs, r.err
	case <-ctx.Done():
		cause = ctx.Err()
	case <-t.ctx.Done():
		cause = ErrClosed
	case <-sc.dead:
		cause = errConnLost
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case r := <-res:
		return r.ch, r.reqs, r.err
	default:
		abandoned = true
		return nil, nil, cause
	}
}

// goOpen runs f, which calls sc.conn.OpenChannel, in a goroutine that
// serveConn waits for when the connection ends (waitOpens), and so Close
// too. It returns false once the connection has ended.
//
// These goroutines are not started with goFunc because of the x/crypto/ssh
// race described at gateConn: an OpenChannel call caught by it never
// returns, and Close must not wait for it forever.
func (sc *sshConn) goOpen(f func()) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.finished {
		return false
	}
	sc.opening++
	go func() {
		defer func() {
			sc.mu.Lock()
			sc.opening--
			sc.mu.Unlock()
			select {
			case sc.opened <- struct{}{}:
			default:
			}
		}()
		f()
	}()
	return true
}

// openGrace is how long waitOpens waits for channel opens on an ended
// connection; those still blocked after it are lost to the x/crypto/ssh race.
const openGrace = 5 * time.Second

// waitOpens waits for the OpenChannel calls on the ended connection sc: the
// mux has closed every channel it knew, so they return at once unless the
// x/crypto/ssh race caught them.
func (t *Transport) waitOpens(sc *sshConn) {
	sc.mu.Lock()
	sc.finished = true
	sc.mu.Unlock()
	grace := time.NewTimer(openGrace)
	defer grace.Stop()
	for {
		sc.mu.Lock()
		n := sc.opening
		sc.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-sc.opened:
		case <-grace.C:
			t.log.Error("transport: channel opens blocked forever in x/crypto/ssh after their connection ended; their goroutines leak",
				logPeer, sc.nodeID, logCount, n)
			return
		}
	}
}

// conn returns the SSH connection to addr, dialling it if there is none,
// it has died or addr now resolves to another node.
func (t *Transport) conn(ctx context.Context, addr string) (*sshConn, error) {
	nodeID, ok := t.cfg.Resolve(addr)
	if !ok {
		return nil, fmt.Errorf("%w at %s", ErrUnknownNode, addr)
	}
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	d := t.out[addr]
	if d != nil && d.nodeID != nodeID {
		delete(t.out, addr) // the dial (if still running) closes its connection
		if isClosed(d.ready) && d.sc != nil {
			d.sc.conn.Close()
		}
		d = nil
	}
	if d != nil && isClosed(d.ready) && (d.err != nil || d.sc.broken()) {
		delete(t.out, addr)
		d = nil
	}
	if d == nil {
		d = &dialState{addr: addr, nodeID: nodeID, ready: make(chan struct{})}
		t.out[addr] = d
		t.goLocked(func() { t.dial(d) })
	}
	t.mu.Unlock()
	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("transport: connect to %s (node %q): %w", addr, nodeID, ctx.Err())
	case <-t.ctx.Done():
		return nil, ErrClosed
	}
	if d.err != nil {
		return nil, d.err
	}
	return d.sc, nil
}

// dial establishes the connection of d and then serves it until it ends.
func (t *Transport) dial(d *dialState) {
	sc, chans, reqs, err := t.connect(d.addr, d.nodeID)
	if err == nil {
		t.register(sc)
	}
	t.mu.Lock()
	switch {
	case err != nil:
	case t.closing:
		err = ErrClosed
	case t.out[d.addr] != d:
		err = fmt.Errorf("transport: %s no longer resolves to node %q", d.addr, d.nodeID)
		sc.conn.Close()
	}
	if err != nil {
		if t.out[d.addr] == d {
			delete(t.out, d.addr)
		}
		d.err = err
	} else {
		d.sc = sc
	}
	t.mu.Unlock()
	close(d.ready)
	if err != nil && !errors.Is(err, ErrClosed) {
		t.log.Debug("transport: dial failed", logAddr, d.addr, logPeer, d.nodeID, logErr, err)
	}
	if sc != nil {
		t.serveConn(sc, chans, reqs)
	}
}

// connect dials addr and runs the client side of the SSH handshake,
// requiring the host key Trust binds to nodeID.
func (t *Transport) connect(addr, nodeID string) (*sshConn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	raw, err := t.dialRaw(ctx, addr)
	if err != nil {
		if t.ctx.Err() != nil {
			return nil, nil, nil, ErrClosed
		}
		return nil, nil, nil, fmt.Errorf("transport: connect to %s (node %q): %w", addr, nodeID, err)
	}
	if !t.track(raw) {
		raw.Close()
		return nil, nil, nil, ErrClosed
	}
	defer t.untrack(raw)
	dl, _ := ctx.Deadline()
	raw.SetDeadline(dl)
	var hostKey ssh.PublicKey
	conf := &ssh.ClientConfig{
		Config:        t.sshConfig,
		User:          t.cfg.NodeID,
		Auth:          []ssh.AuthMethod{ssh.PublicKeys(t.cfg.Signer)},
		ClientVersion: sshVersion,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if err := t.checkHostKey(addr, nodeID, key); err != nil {
				return err
			}
			hostKey = key
			return nil
		},
	}
	gate := &gateConn{Conn: raw}
	conn, chans, reqs, err := ssh.NewClientConn(gate, addr, conf)
	if err != nil {
		raw.Close()
		if t.ctx.Err() != nil {
			return nil, nil, nil, ErrClosed
		}
		return nil, nil, nil, fmt.Errorf("transport: SSH handshake with %s (node %q): %w", addr, nodeID, err)
	}
	raw.SetDeadline(time.Time{})
	sc := newSSHConn(conn, gate, nodeID, hostKey)
	sc.addr = addr
	sc.outgoing = true
	sc.idle = make(chan *chanConn, rpcIdlePerPeer)
	t.armGate(sc)
	return sc, chans, reqs, nil
}

// dialRaw connects to addr over cfg.Network, or TCP from localAddr.
func (t *Transport) dialRaw(ctx context.Context, addr string) (net.Conn, error) {
	if t.cfg.Network != nil {
		return t.cfg.Network.DialContext(ctx, addr)
	}
	dialer := net.Dialer{}
	if t.localAddr != nil {
		dialer.LocalAddr = t.localAddr
	}
	return dialer.DialContext(ctx, "tcp", addr)
}

// checkHostKey requires the host key of the server at addr to be bound to
// nodeID, the node Resolve says is there.
func (t *Transport) checkHostKey(addr, nodeID string, key ssh.PublicKey) error {
	id, why := t.cfg.Trust.Lookup(key)
	var err error
	switch {
	case why != "":
		err = fmt.Errorf("%w: %s presented key %s, which %s; expected node %q",
			ErrHostKeyMismatch, addr, ssh.FingerprintSHA256(key), why, nodeID)
	case id != nodeID:
		err = fmt.Errorf("%w: %s presented the key of node %q (%s); expected node %q",
			ErrHostKeyMismatch, addr, id, ssh.FingerprintSHA256(key), nodeID)
	}
	if err != nil {
		t.log.Warn("transport: refused peer host key", logAddr, addr, logPeer, nodeID, logReason, err)
	}
	return err
}
