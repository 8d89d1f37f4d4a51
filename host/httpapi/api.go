package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/buildinfo"
)

// Config configures an API. Start from DefaultConfig.
type Config struct {
	// Token, if set, is required as "Authorization: Bearer <token>" on every
	// endpoint but /healthz and /readyz, on both handlers.
	Token string
	// MaxBodyBytes bounds request bodies (default abi.MaxCommandSize). Plugin
	// deploys allow abi.MaxModuleSize and PUT /v1/kv/{key} at most
	// abi.MaxValueSize; a restore is streamed to disk with no limit.
	MaxBodyBytes int64
	// RequestTimeout is each request's context deadline (default 10 s), and
	// the time its whole body has to arrive in. Backup and restore streams
	// and plugin deploys (which compile the module) have no context
	// deadline: the client and the node's apply timeout bound them.
	RequestTimeout time.Duration
	// StreamIdleTimeout bounds the bodies of plugin deploys and restores,
	// which may be long streams: the connection is closed when no byte of
	// the body arrives for this long (default 1 min).
	StreamIdleTimeout time.Duration
	// Logger receives server-side failures (5xx answers), changes of
	// readiness and the access log. Nil discards.
	Logger *slog.Logger
	// AccessLog logs every request but the health probes (/healthz,
	// /readyz) at info level when it is answered: method, path, route,
	// status, bytes, duration and the client's address.
	AccessLog bool
	// Registry is where the HTTP and node metrics are registered and what
	// /metrics serves; nil creates one.
	Registry *prometheus.Registry
	// AllowedHosts are the host names (ports ignored) a node without a
	// Token answers to in the Host header, besides IP addresses, localhost
	// and *.localhost: any other name is refused, against DNS rebinding
	// (see guard.go).
	AllowedHosts []string
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: abi.MaxCommandSize, RequestTimeout: 10 * time.Second, StreamIdleTimeout: time.Minute}
}

// API serves a node over HTTP. Build it with New; its handlers are safe for
// concurrent use.
type API struct {
	node  *host.Node
	cfg   Config
	log   *slog.Logger
	token []byte // "Bearer <token>", nil when no token is required
	// allowedHosts is Config.AllowedHosts, normalized (see hostAllowed).
	allowedHosts []string
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	seconds      *prometheus.HistogramVec
	metrics      http.Handler

	ready atomic.Int32 // readiness /readyz last answered: 0 none yet, 1 ready, 2 not ready
	// writes and reads count the successful key-value and plugin requests
	// this node answered (see routeClass), for GET /v1/status and /ui.
	writes, reads atomic.Uint64

	routes    map[string]*routeMetrics // by mux pattern; written only by New
	unmatched *routeMetrics
	client    http.Handler
	mgmt      http.Handler
}

// New returns the HTTP API of node. It registers the node's collectors, the
// HTTP metrics and the Go and process collectors with cfg.Registry; a
// collector that is already registered there is reused, and any other
// registration failure is logged.
func New(node *host.Node, cfg Config) *API {
	def := DefaultConfig()
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = def.RequestTimeout
	}
	if cfg.StreamIdleTimeout <= 0 {
		cfg.StreamIdleTimeout = def.StreamIdleTimeout
	}
	a := &API{node: node, cfg: cfg, log: cfg.Logger, reg: cfg.Registry, routes: map[string]*routeMetrics{}}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Token != "" {
		a.token = []byte("Bearer " + cfg.Token)
	}
	a.allowedHosts = normalizeHosts(cfg.AllowedHosts)
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
	}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "raftkv_http_requests_total",
		Help: "HTTP requests answered, by route (the mux pattern) and status code.",
	}, []string{"route", "code"})
	a.seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "raftkv_http_request_seconds",
		Help:    "Time to answer an HTTP request, by route (the mux pattern).",
		Buckets: prometheus.ExponentialBuckets(50e-6, 4, 10),
	}, []string{"route"})
	a.requests = register(a, a.requests)
	a.seconds = register(a, a.seconds)
	register[prometheus.Collector](a, buildInfoCollector())
	register[prometheus.Collector](a, collectors.NewGoCollector())
	register[prometheus.Collector](a, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range node.Collectors() {
		register(a, c)
	}
	a.metrics = promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)})
	a.unmatched = a.newRouteMetrics("unmatched")

	client := http.NewServeMux()
	a.clientRoutes(client)
	a.clusterRoutes(client)
	a.commonRoutes(client)
	a.client = a.serve(client)

	mgmt := http.NewServeMux()
	a.handle(mgmt, "GET /join", changes, a.seedJoin)
	a.clusterRoutes(mgmt)
	a.commonRoutes(mgmt)
	a.mgmt = a.serve(mgmt)
	return a
}

// buildInfoCollector is raftkv_build_info, 1 with the build as labels.
func buildInfoCollector() prometheus.Collector {
	bi := buildinfo.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "raftkv_build_info",
		Help: "The node's build: always 1, with the version, commit, build time and Go version as labels.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "build_time": bi.BuildTime,
			"goversion": bi.GoVersion},
	})
	g.Set(1)
	return g
}

// register registers c, or returns the collector already registered in its
// place.
func register[C prometheus.Collector](a *API, c C) C {
	err := a.reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
	case errors.As(err, &are):
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	default:
		a.log.Warn("httpapi: registering a metrics collector failed", "err", err)
	}
	return c
}

// Handler returns the client API: the key-value, transaction, plugin,
// cluster, backup and restore endpoints, the RaftKV seed's /insert-val and
// /get-val, /healthz, /readyz and /metrics.
func (a *API) Handler() http.Handler { return a.client }

// Protect wraps another handler of the node (its profiler) in the API's
// access rules: the token when one is set, the browser guard otherwise.
func (a *API) Protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			a.writeError(w, r, errUnauthorized)
			return
		}
		if err := a.guardBrowser(r, false); err != nil {
			a.writeError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// MgmtHandler returns the management API: the RaftKV seed's GET /join, the
// /v1/cluster endpoints, backup and restore, /healthz, /readyz and /metrics.
func (a *API) MgmtHandler() http.Handler { return a.mgmt }

func (a *API) clientRoutes(mux *http.ServeMux) {
	a.handle(mux, "PUT /v1/kv/{key...}", 0, a.kvPut)
	a.handle(mux, "GET /v1/kv/{key...}", 0, a.kvGet)
	a.handle(mux, "DELETE /v1/kv/{key...}", 0, a.kvDelete)
	a.handle(mux, "GET /v1/kv", 0, a.kvList)
	a.handle(mux, "POST /v1/txn", 0, a.kvTxn)

	a.handle(mux, "POST /insert-val", 0, a.seedInsert)
	a.handle(mux, "GET /get-val", 0, a.seedGet)

	a.handle(mux, "POST /v1/plugins/{name}/commands", 0, a.pluginCommand)
	a.handle(mux, "POST /v1/plugins/{name}/queries", 0, a.pluginQuery)
	a.handle(mux, "PUT /v1/plugins/{name}", noDeadline|stream, a.pluginDeploy) // compiling a module may take long
	a.handle(mux, "GET /v1/plugins", 0, a.pluginList)
	a.handle(mux, "DELETE /v1/plugins/{name}", 0, a.pluginRemove)
	a.handle(mux, "GET /v1/plugins/{name}/digest", 0, a.pluginDigest)
	a.handle(mux, "GET /v1/plugins/{name}", 0, a.pluginGet)
	a.handle(mux, "PUT /v1/plugins/{name}/limits", noDeadline, a.pluginLimits) // compiles the module again
	a.handle(mux, "POST /v1/plugins/{name}/reset", noDeadline, a.pluginReset)
	a.handle(mux, "POST /v1/plugins/{name}/quarantine", 0, a.pluginQuarantine)
}

func (a *API) clusterRoutes(mux *http.ServeMux) {
	a.handle(mux, "GET /v1/cluster", 0, a.cluster)
	a.handle(mux, "GET /v1/version", 0, a.version)
	a.handle(mux, "GET /v1/status", 0, a.status)
	a.handle(mux, "GET /v1/status/cluster", 0, a.clusterStatus)
	a.handle(mux, "GET /ui", public, a.ui)
	a.handle(mux, "GET /ui/{file}", public, a.ui)
	a.handle(mux, "POST /v1/cluster/trust", 0, a.clusterTrust)
	a.handle(mux, "POST /v1/cluster/join", 0, a.clusterJoin)
	a.handle(mux, "DELETE /v1/cluster/members/{id}", 0, a.clusterRemove)
	a.handle(mux, "GET /v1/backup", noDeadline, a.backup)
	a.handle(mux, "POST /v1/restore", noDeadline|stream, a.restore)
}

func (a *API) commonRoutes(mux *http.ServeMux) {
	a.handle(mux, "GET /healthz", public, a.healthz)
	a.handle(mux, "GET /readyz", public, a.readyz)
	a.handle(mux, "GET /metrics", 0, func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		a.metrics.ServeHTTP(w, r)
		return nil
	})
}

// handlerFunc serves one route. It returns an error instead of writing it,
// unless it has already started the answer; writeError then reports it.
type handlerFunc func(ctx context.Context, w http.ResponseWriter, r *http.Request) error

type routeOpts uint8

const (
	public     routeOpts = 1 << iota // no token required
	noDeadline                       // streams and deploys: no RequestTimeout
	stream                           // the body may be long: StreamIdleTimeout between reads
	changes                          // a GET that changes the cluster (the seed's /join): see guardBrowser
)

// handle registers h for pattern with authentication (the token, or without
// one the browser guard), the request deadline and error reporting.
func (a *API) handle(mux *http.ServeMux, pattern string, opts routeOpts, h handlerFunc) {
	if a.routes[pattern] == nil {
		a.routes[pattern] = a.newRouteMetrics(pattern)
	}
	mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()[idempotencyHeader] = idempotencySupported
		if opts&public == 0 {
			if !a.authorized(r) {
				a.writeError(w, r, errUnauthorized)
				return
			}
			if err := a.guardBrowser(r, opts&changes != 0); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
		if opts&stream != 0 && r.ContentLength != 0 {
			if sw, ok := w.(*statusWriter); ok {
				sw.bodyIdle = a.cfg.StreamIdleTimeout
				sw.setReadDeadline(time.Now().Add(sw.bodyIdle))
			}
		}
		ctx := r.Context()
		if opts&noDeadline == 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, a.cfg.RequestTimeout)
			defer cancel()
		}
		if err := h(ctx, w, r); err != nil {
			a.writeError(w, r, err)
		}
	}))
}

// authorized reports whether the request carries the token, if one is set.
func (a *API) authorized(r *http.Request) bool {
	if a.token == nil {
		return true
	}
	got := r.Header.Get("Authorization")
	return len(got) == len(a.token) && subtle.ConstantTimeCompare([]byte(got), a.token) == 1
}

// serve wraps a mux: it records the status of every answer for the metrics,
// and turns the mux's own 404 and 405 answers into JSON errors (401 when a
// token is required and missing, so that routes are not revealed).
func (a *API) serve(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := writerPool.Get().(*statusWriter)
		*sw = statusWriter{ResponseWriter: w, req: r, api: a}
		if r.ContentLength != 0 { // a body (-1: of unknown length) has RequestTimeout to arrive
			sw.setReadDeadline(start.Add(a.cfg.RequestTimeout))
		}
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && p != cleanPath(p) {
			// The mux would redirect to the cleaned path: a client that
			// follows it (curl -L, Go's http.Client, for a PUT too) would
			// write another key than the one it named (/v1/kv/a/../c is c).
			e := classify(&httpError{Status: http.StatusBadRequest, Code: "bad_request",
				Message: fmt.Sprintf("path %q is not clean (it has //, /./ or /../ in it, or ends in /. or /..): "+
					"percent-encode the dots and slashes of a key or name (%%2E, %%2F)", p)})
			sw.code = e.write(countingWriter{w, &sw.written})
		} else {
			mux.ServeHTTP(sw, r)
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http answers 200
		}
		rm := a.routes[r.Pattern] // redirects set a path as the pattern: unmatched
		if rm == nil {
			rm = a.unmatched
		}
		d := time.Since(start)
		rm.observe(code, d)
		if rm.count != nil && code/100 == 2 {
			rm.count.Add(1)
		}
		if a.cfg.AccessLog && !isProbe(r.Pattern) {
			a.log.Info("http request", "method", r.Method, "path", r.URL.Path, "route", rm.route,
				"status", code, "bytes", sw.written, "duration", d, "remote", r.RemoteAddr)
		}
		*sw = statusWriter{}
		writerPool.Put(sw)
	})
}

// cleanPath is p as net/http's ServeMux cleans it before it routes a
// request (redirecting when they differ): path.Clean, rooted, keeping a
// trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// isProbe reports whether a route is a health probe: load balancers and
// orchestrators call them every few seconds, so they are not logged per call.
func isProbe(pattern string) bool { return pattern == "GET /healthz" || pattern == "GET /readyz" }

var writerPool = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter records the status code of an answer. A panic in a handler
// (http.ErrAbortHandler) skips the pool, which is harmless.
type statusWriter struct {
	http.ResponseWriter
	req     *http.Request
	api     *API
	code    int
	written int64 // body bytes written
	swallow bool  // the mux's plain-text error body is replaced
	// bodyIdle, when set, is how long each read of the body may wait
	// (stream routes); otherwise the whole body has one deadline.
	bodyIdle time.Duration
	body     timedBody // see newTimedBody
}

// setReadDeadline sets the connection's read deadline, where the server
// supports it (HTTP/1 and HTTP/2 do; a test recorder does not).
func (w *statusWriter) setReadDeadline(t time.Time) {
	_ = http.NewResponseController(w.ResponseWriter).SetReadDeadline(t)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code != 0 || code < 200 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.req.Pattern == "" && code >= 400 {
		// The mux's own NotFound or MethodNotAllowed handler: no route ran.
		w.swallow = true
		var err error
		switch {
		case !w.api.authorized(w.req):
			err = errUnauthorized
		case code == http.StatusMethodNotAllowed:
			err = &httpError{Status: code, Code: "method_not_allowed", Message: "method " + w.req.Method + " not allowed on " + w.req.URL.Path}
		case code == http.StatusNotFound:
			err = &httpError{Status: code, Code: "not_found", Message: "no endpoint " + w.req.URL.Path}
		default:
			err = &httpError{Status: code, Code: "bad_request", Message: http.StatusText(code)}
		}
		w.ResponseWriter.Header().Del("X-Content-Type-Options")
		e := classify(err)
		w.code = e.write(countingWriter{w.ResponseWriter, &w.written})
		return
	}
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.swallow {
		return len(p), nil
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	*c.n += int64(n)
	return n, err
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// started reports whether the answer's header has been sent.
func started(w http.ResponseWriter) bool {
	sw, ok := w.(*statusWriter)
	return ok && sw.code != 0
}

// rawWriter returns the server's own ResponseWriter, which
// http.MaxBytesReader needs to close the connection after a too-large body.
func rawWriter(w http.ResponseWriter) http.ResponseWriter {
	if sw, ok := w.(*statusWriter); ok {
		return sw.ResponseWriter
	}
	return w
}

// routeMetrics are one route's instruments, resolved once so that the
// request path does no label lookups.
type routeMetrics struct {
	route   string
	count   *atomic.Uint64 // API.writes or API.reads, by routeClass; nil for the others
	seconds prometheus.Observer
	vec     *prometheus.CounterVec
	codes   [500]atomic.Pointer[prometheus.Counter] // status 100-599
}

func (a *API) newRouteMetrics(route string) *routeMetrics {
	m := &routeMetrics{route: route, seconds: a.seconds.WithLabelValues(route), vec: a.requests}
	switch routeClass[route] {
	case "write":
		m.count = &a.writes
	case "read":
		m.count = &a.reads
	}
	return m
}

// routeClass says which routes are writes and reads of the state (what
// /v1/status counts).
var routeClass = map[string]string{
	"PUT /v1/kv/{key...}": "write", "DELETE /v1/kv/{key...}": "write", "POST /v1/txn": "write",
	"POST /insert-val": "write", "POST /v1/plugins/{name}/commands": "write",
	"GET /v1/kv/{key...}": "read", "GET /v1/kv": "read", "GET /get-val": "read",
	"POST /v1/plugins/{name}/queries": "read",
}

func (m *routeMetrics) observe(code int, d time.Duration) {
	m.seconds.Observe(d.Seconds())
	if code < 100 || code > 599 {
		m.vec.WithLabelValues(m.route, itoa(code)).Inc()
		return
	}
	p := &m.codes[code-100]
	c := p.Load()
	if c == nil {
		counter := m.vec.WithLabelValues(m.route, itoa(code))
		c = &counter
		p.Store(c)
	}
	(*c).Inc()
}
