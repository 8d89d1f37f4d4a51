package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Client. Start from DefaultConfig.
type Config struct {
	// Endpoints are nodes' HTTP API addresses: "http://host:port",
	// "https://host:port", or "host:port" (http). At least one.
	Endpoints []string
	// Token is sent as "Authorization: Bearer <token>" when set.
	Token string
	// TLSConfig verifies https endpoints (nil: the system roots).
	TLSConfig *tls.Config
	// HTTPClient, if set, sends the requests (TLSConfig and DialTimeout are
	// then ignored). Its Timeout, if any, bounds each attempt.
	HTTPClient *http.Client
	// DialTimeout bounds connecting to a node, so that a node that is down
	// is passed over quickly (default 2 s).
	DialTimeout time.Duration
	// MaxAttempts bounds the attempts of one call, the first included
	// (default 30: with the default backoff, some 25 s, which rides out a
	// leader election on a loaded machine; 1 disables retries). The call's
	// context bounds them too.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from MinBackoff (defaults 50 ms and 1 s). The first retry on
	// another node is immediate.
	MinBackoff, MaxBackoff time.Duration
	// NoIdempotencyKeys stops the client from giving every write a random
	// Idempotency-Key; ambiguous failures of writes are then never retried.
	NoIdempotencyKeys bool
	// UserAgent is sent with every request (default "raftkv-go-client").
	UserAgent string
}

// DefaultConfig returns the defaults, without endpoints.
func DefaultConfig() Config {
	return Config{DialTimeout: 2 * time.Second, MaxAttempts: 30, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second, UserAgent: "raftkv-go-client"}
}

// Validate checks the configuration; zero values take their defaults.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return ErrNoEndpoints
	}
	for _, e := range c.Endpoints {
		if _, err := normalize(e); err != nil {
			return err
		}
	}
	if c.MaxAttempts < 0 || c.DialTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("raftkv: negative MaxAttempts, DialTimeout or backoff")
	}
	return nil
}

// normalize turns an endpoint into scheme://host:port.
func normalize(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrBadEndpoint, addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("%w %q: want http://host:port or https://host:port", ErrBadEndpoint, addr)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Client calls a raftkv cluster. It is safe for concurrent use.
type Client struct {
	cfg Config
	hc  *http.Client
	own bool // hc was made here: Close closes its idle connections

	mu        sync.Mutex
	eps       []*endpoint
	cur       int       // index of the endpoint used when no leader is known
	leader    *endpoint // the leader's endpoint, nil when unknown
	refreshed time.Time // last discovery

	pinned  *endpoint // At: every call goes there, with no failover
	dedupes atomic.Bool
	parent  *Client
}

// endpoint is one node's API.
type endpoint struct {
	url       string
	nodeID    string    // learned from GET /v1/cluster; "" until then
	downUntil time.Time // passed over until then after a failure
}

// New returns a client of the cluster at cfg.Endpoints.
func New(cfg Config) (*Client, error) {
	def := DefaultConfig()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = def.DialTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = def.MaxAttempts
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = def.MinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = def.MaxBackoff
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = def.UserAgent
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSClientConfig = cfg.TLSConfig
		tr.MaxIdleConnsPerHost = 16
		c.hc, c.own = &http.Client{Transport: tr}, true
	}
	seen := map[string]bool{}
	for _, e := range cfg.Endpoints {
		u, _ := normalize(e)
		if !seen[u] {
			seen[u] = true
			c.eps = append(c.eps, &endpoint{url: u})
		}
	}
	return c, nil
}

// Close releases idle connections. The client must not be used afterwards.
func (c *Client) Close() error {
	if c.own && c.parent == nil {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// Endpoints returns the endpoints the client knows, the configured ones
// first.
func (c *Client) Endpoints() []string {
	if c.pinned != nil {
		return []string{c.pinned.url}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.eps))
	for i, e := range c.eps {
		out[i] = e.url
	}
	return out
}

// At returns a client that sends every call to the given endpoint only,
// without failover or leader routing (retries stay on that node), sharing
// this client's connections. For per-node calls: health, status, digests.
func (c *Client) At(addr string) (*Client, error) {
	u, err := normalize(addr)
	if err != nil {
		return nil, err
	}
	root := c
	if c.parent != nil {
		root = c.parent
	}
	p := &Client{cfg: root.cfg, hc: root.hc, own: root.own, parent: root, pinned: &endpoint{url: u}}
	p.dedupes.Store(root.dedupes.Load())
	return p, nil
}

// Request is a raw API call, for what the typed methods do not cover.
type Request struct {
	Method string
	Path   string // "/v1/kv/a%2Fb": already escaped
	Query  url.Values
	// Body is sent as is with ContentType; it is re-sent on a retry.
	Body        []byte
	ContentType string
	// Stream, if set instead of Body, is streamed. A call whose Stream was
	// partly read is retried only when the Stream is an io.Seeker (it is
	// rewound to where it started), under the same rules as Body.
	// StreamSize is its length (-1 unknown).
	Stream     io.Reader
	StreamSize int64
	Header     http.Header
	// Write marks a call that changes the cluster's state (see the
	// package's Retries). Leader sends it to the leader when known.
	// Idempotent marks a write that applied twice has the effect of once
	// (deploying the module a plugin already runs, joining or trusting
	// again; not a restore, which would wipe the writes acknowledged between
	// the two): it is retried as a read is.
	// Command marks a write the cluster applies as a plugin command (kv
	// writes, transactions, POST /v1/plugins/{name}): only those are
	// deduplicated by their Idempotency-Key, so only they get one.
	Write, Leader, Idempotent, Command bool
	// Once makes one attempt only, whatever its outcome: a probe, whose
	// answer (503 included) is the result.
	Once bool
	// Progress, if set, is called as the body is sent, with the bytes sent
	// so far and the total (-1 unknown), on every attempt.
	Progress func(sent, total int64)

	streamed *countReader // how much of Stream the attempts consumed
	// notTo, if set, is a node ID the request must not be sent to when
	// another endpoint can take it (RemoveMember: a node cannot hear the
	// outcome of its own removal).
	notTo string
}

// countReader counts what it reads. The HTTP transport reads the body on
// its own goroutine, which may still run when Do looks at the count.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// streamStarted reports whether an attempt consumed part of the Stream, so
// that it cannot be sent again.
func (r *Request) streamStarted() bool { return r.streamed != nil && r.streamed.n.Load() > 0 }

// Do sends a raw request with the client's routing, retries and error
// handling and returns a 2xx answer, whose body the caller must close. Any
// other answer is an *Error.
func (c *Client) Do(ctx context.Context, req Request) (*http.Response, error) {
	if err := checkPluginPath(req.Path); err != nil {
		return nil, err
	}
	if req.Write && req.Command && !c.cfg.NoIdempotencyKeys && req.Header.Get("Idempotency-Key") == "" {
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Set("Idempotency-Key", NewIdempotencyKey())
	}
	var lastErr error
	ambiguous := false // an attempt of this write may have been applied
	backoff := time.Duration(0)
	var rewind func() error
	if sk, ok := req.Stream.(io.Seeker); ok {
		if start, err := sk.Seek(0, io.SeekCurrent); err == nil {
			rewind = func() error { _, err := sk.Seek(start, io.SeekStart); return err }
		}
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 && req.streamStarted() {
			if err := rewind(); err != nil { // retryable said it can
				return nil, final(&req, lastErr)
			}
		}
		ep := c.pick(ctx, req.Leader, req.notTo)
		resp, err := c.send(ctx, ep, &req)
		if err == nil {
			return resp, nil
		}
		var ae *Error
		if ambiguous && errors.As(err, &ae) {
			ae.AfterUnknownOutcome = true
		}
		ambiguous = ambiguous || req.Write && isAmbiguous(err)
		lastErr = err
		switched := c.failed(ep, err)
		if req.Once || attempt >= c.cfg.MaxAttempts || ctx.Err() != nil || !c.retryable(&req, err, rewind != nil) {
			return nil, final(&req, err)
		}
		// A different node is tried at once; the same one (or all of them,
		// in turn) after a growing pause: a leader election takes a while.
		if !switched || attempt > len(c.eps) {
			if backoff == 0 {
				backoff = c.cfg.MinBackoff
			} else {
				backoff = min(2*backoff, c.cfg.MaxBackoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, final(&req, lastErr)
			case <-t.C:
			}
		}
	}
}

// send makes one attempt on ep.
func (c *Client) send(ctx context.Context, ep *endpoint, req *Request) (*http.Response, error) {
	u := ep.url + req.Path
	if len(req.Query) > 0 {
		u += "?" + req.Query.Encode()
	}
	var body io.Reader
	switch {
	case req.Stream != nil:
		req.streamed = &countReader{r: req.Stream}
		body = req.streamed
		if req.Progress != nil {
			body = &progressReader{r: body, total: req.StreamSize, f: req.Progress}
		}
	case req.Body != nil:
		body = bytes.NewReader(req.Body)
		if req.Progress != nil {
			body = &progressReader{r: body, total: int64(len(req.Body)), f: req.Progress}
		}
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u, body)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Stream != nil:
		hr.ContentLength = req.StreamSize
		if req.StreamSize == 0 {
			hr.Body = http.NoBody
		}
	case req.Body != nil:
		hr.ContentLength = int64(len(req.Body))
		hr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(req.Body)), nil }
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	if k := hr.Header["Idempotency-Key"]; k != nil && !c.root().dedupes.Load() {
		// net/http replays a request carrying Idempotency-Key by itself when
		// a reused connection fails, which is safe only if the cluster
		// deduplicates: until it says so, send the header under a spelling
		// net/http does not look for (header names are case-insensitive).
		delete(hr.Header, "Idempotency-Key")
		hr.Header["idempotency-key"] = k
	}
	if req.ContentType != "" {
		hr.Header.Set("Content-Type", req.ContentType)
	}
	if c.cfg.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	hr.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, &sendError{endpoint: ep.url, err: err, sent: !isDialError(err), streamed: req.Stream != nil}
	}
	if resp.Header.Get("X-Raftkv-Idempotency") != "" {
		c.root().dedupes.Store(true)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return nil, parseError(ep.url, resp, data)
}

func (c *Client) root() *Client {
	if c.parent != nil {
		return c.parent
	}
	return c
}

// parseError makes an *Error of a non-2xx answer.
func parseError(endpoint string, resp *http.Response, data []byte) *Error {
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			PluginCode *int   `json:"plugin_code"`
			Leader     string `json:"leader"`
		} `json:"error"`
	}
	ae := &Error{Status: resp.StatusCode, Endpoint: endpoint, Leader: resp.Header.Get("X-Raftkv-Leader")}
	if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
		ae.Code, ae.Message = e.Error.Code, e.Error.Message
		if e.Error.PluginCode != nil {
			ae.PluginCode, ae.HasPluginCode = *e.Error.PluginCode, true
		}
		if ae.Leader == "" {
			ae.Leader = e.Error.Leader
		}
	} else {
		ae.Message = strings.TrimSpace(string(data))
	}
	return ae
}

// final is the error a call returns: an answer's *Error as is; a request
// that got no answer as an *Error whose code says what is known: a write
// that may have been applied is unknown_outcome (ErrUnknownOutcome), any
// other call ErrUnavailable.
func final(req *Request, err error) error {
	var se *sendError
	if !errors.As(err, &se) {
		return err
	}
	if errors.Is(se.err, context.Canceled) || errors.Is(se.err, context.DeadlineExceeded) {
		if req.Write && se.sent {
			return &Error{Code: CodeUnknownOutcome, Message: "the call ended after the write was sent; it may or may not be applied: " + se.err.Error(), Endpoint: se.endpoint, Err: se.err}
		}
		return se.err
	}
	if req.Write && se.sent {
		return &Error{Code: CodeUnknownOutcome, Message: "the connection failed after the write was sent; it may or may not be applied: " + se.Error(), Endpoint: se.endpoint, Err: se.err}
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, se)
}

// sendError is a request that got no answer.
type sendError struct {
	endpoint string
	err      error
	sent     bool // the request may have reached the node
	streamed bool
}

func (e *sendError) Error() string { return e.endpoint + ": " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// isDialError reports whether err happened before the request was sent:
// the connection could not be made.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryable reports whether a failed attempt may be repeated (see the
// package documentation's Retries).
func (c *Client) retryable(req *Request, err error, rewindable bool) bool {
	gone := req.streamStarted() && !rewindable // the body is (partly) read and cannot be read again
	var se *sendError
	if errors.As(err, &se) {
		if gone {
			return false
		}
		if errors.Is(se.err, context.Canceled) || errors.Is(se.err, context.DeadlineExceeded) {
			return false
		}
		return !req.Write || !se.sent || c.mayRepeat(req)
	}
	var ae *Error
	if !errors.As(err, &ae) {
		return false
	}
	if gone {
		return false
	}
	switch {
	case ae.Code == "quarantined":
		return false // the whole cluster's state, until a deploy or an operator lifts it
	case ae.Status == http.StatusServiceUnavailable, ae.Status == http.StatusTooManyRequests:
		return true // refused before anything was proposed
	case ae.Status == http.StatusGatewayTimeout:
		return !req.Write || c.mayRepeat(req)
	}
	return false
}

// mayRepeat reports whether a write that may have been applied can be sent
// again: it is idempotent by nature, or it is a plugin command that carries
// an idempotency key and the cluster deduplicates them.
func (c *Client) mayRepeat(req *Request) bool {
	return req.Idempotent || req.Command && req.Header.Get("Idempotency-Key") != "" && c.root().dedupes.Load()
}

// isAmbiguous reports whether a failed attempt of a write may have applied
// it: the request was sent and no answer came, or the answer was 504.
func isAmbiguous(err error) bool {
	var se *sendError
	if errors.As(err, &se) {
		return se.sent
	}
	var ae *Error
	return errors.As(err, &ae) && ae.Status == http.StatusGatewayTimeout
}

// pick returns the endpoint for the next attempt.
func (c *Client) pick(ctx context.Context, leader bool, notTo string) *endpoint {
	if c.pinned != nil {
		return c.pinned
	}
	if leader || notTo != "" {
		c.discover(ctx) // learns the endpoints' node IDs too
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if leader && c.leader != nil && now.After(c.leader.downUntil) && (notTo == "" || c.leader.nodeID != notTo) {
		return c.leader
	}
	// Another node (notTo's endpoint only when no other is up): it forwards
	// the request to the leader.
	for _, skip := range []bool{notTo != "", false} {
		for i := range c.eps {
			e := c.eps[(c.cur+i)%len(c.eps)]
			if now.After(e.downUntil) && !(skip && e.nodeID == notTo) {
				c.cur = (c.cur + i) % len(c.eps)
				return e
			}
		}
	}
	// Every node failed recently: try the next one anyway.
	c.cur = (c.cur + 1) % len(c.eps)
	return c.eps[c.cur]
}

// failed records an attempt's failure; it reports whether the next attempt
// goes to another node.
func (c *Client) failed(ep *endpoint, err error) bool {
	if c.pinned != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ae *Error
	switch {
	case errors.As(err, &ae) && (ae.Code == CodeNotLeader || ae.Code == CodeNoLeader):
		// The node answers but has another (or no) leader: learn it.
		if c.leader == ep {
			c.leader = nil
		}
		if l := c.byLeaderLocked(ae.Leader); l != nil && l != ep {
			c.leader = l
			return true
		}
		c.refreshed = time.Time{} // discover again
		return false
	case errors.As(err, &ae) && ae.Code != CodeStopped && ae.Status != http.StatusGatewayTimeout:
		return false // the node works: the request failed
	}
	// No answer, a stopped node or a timeout: pass over it for a while.
	ep.downUntil = time.Now().Add(time.Second)
	if c.leader == ep {
		c.leader = nil
		c.refreshed = time.Time{}
	}
	if len(c.eps) > 1 {
		for i, e := range c.eps {
			if e == ep {
				c.cur = (i + 1) % len(c.eps)
			}
		}
		return true
	}
	return false
}

// byLeaderLocked finds the endpoint a leader hint names: a node ID, or an
// HTTP address (which is added when unknown). Of the endpoints of one node,
// it takes the first: one the caller configured before one the cluster
// published, since the published address is the one the node advertises
// (a name on a container network, say) and may not be reachable from here.
func (c *Client) byLeaderLocked(hint string) *endpoint {
	if hint == "" {
		return nil
	}
	if strings.Contains(hint, ":") {
		u, err := normalize(hint)
		if err != nil {
			return nil
		}
		for _, e := range c.eps {
			if e.url == u {
				if e.nodeID != "" {
					return c.byNodeLocked(e.nodeID)
				}
				return e
			}
		}
		e := &endpoint{url: u}
		c.eps = append(c.eps, e)
		return e
	}
	return c.byNodeLocked(hint)
}

// byNodeLocked returns the first endpoint known to be node id, or nil.
func (c *Client) byNodeLocked(id string) *endpoint {
	for _, e := range c.eps {
		if e.nodeID == id {
			return e
		}
	}
	return nil
}

// discover learns which endpoint is which node and who leads, from GET
// /v1/cluster, at most every 500 ms while the leader is unknown.
func (c *Client) discover(ctx context.Context) {
	c.mu.Lock()
	if c.leader != nil || time.Since(c.refreshed) < 500*time.Millisecond {
		c.mu.Unlock()
		return
	}
	c.refreshed = time.Now()
	eps := append([]*endpoint(nil), c.eps...)
	c.mu.Unlock()
	// Ask until a node names the leader and every endpoint that answers
	// knows which node it is: the leader is then reached through an
	// endpoint the caller gave when there is one (byLeaderLocked).
	leader := ""
	for _, ep := range eps {
		c.mu.Lock()
		known := ep.nodeID != ""
		c.mu.Unlock()
		if time.Now().Before(ep.downUntil) || (leader != "" && known) {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := c.clusterAt(actx, ep)
		cancel()
		if err != nil {
			continue
		}
		c.mu.Lock()
		ep.nodeID = info.NodeID
		for _, m := range info.Members {
			if m.APIAddress != "" {
				c.byLeaderLocked(m.APIAddress) // adds unknown members' endpoints
				for _, e := range c.eps {
					if u, _ := normalize(m.APIAddress); e.url == u && e.nodeID == "" {
						e.nodeID = m.ID
					}
				}
			}
		}
		c.mu.Unlock()
		if leader == "" {
			leader = info.Leader
		}
	}
	if leader != "" {
		c.mu.Lock()
		c.leader = c.byLeaderLocked(leader)
		c.mu.Unlock()
	}
}

// clusterAt reads GET /v1/cluster from one endpoint, once.
func (c *Client) clusterAt(ctx context.Context, ep *endpoint) (ClusterInfo, error) {
	var info ClusterInfo
	resp, err := c.send(ctx, ep, &Request{Method: http.MethodGet, Path: "/v1/cluster"})
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	return info, decode(resp, &info)
}

// decode decodes a JSON answer.
func decode(resp *http.Response, out any) error {
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrBadAnswer, resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// doJSON sends in (if not nil) as JSON and decodes the JSON answer into out
// (if not nil).
func (c *Client) doJSON(ctx context.Context, req Request, in, out any) error {
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		req.Body, req.ContentType = data, "application/json"
	}
	resp, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return decode(resp, out)
}

// NewIdempotencyKey returns a random key for WithIdempotencyKey.
func NewIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkPluginPath refuses a plugin path whose name the server cannot route:
// "/v1/plugins/" with an empty name is another endpoint, and
// "/v1/plugins//digest" is cleaned, redirected and answered for a plugin
// named "digest"; "." and ".." are cleaned away likewise.
func checkPluginPath(path string) error {
	rest, ok := strings.CutPrefix(path, "/v1/plugins/")
	if !ok {
		return nil
	}
	name, _, _ := strings.Cut(rest, "/")
	switch name {
	case "":
		return errors.New("raftkv: no plugin name given")
	case ".", "..":
		return fmt.Errorf("raftkv: plugin name %q is not valid: want a lowercase letter followed by up to 62 of [a-z0-9_-]", name)
	}
	return nil
}
