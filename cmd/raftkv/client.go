package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
)

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	addr      string
	endpoints string
	token     string
	tokenFile string
	caCert    string
	timeout   time.Duration
	json      bool
	fs        *flagSet
}

// addClientFlags defines --addr, --endpoints, --token, --token-file,
// --ca-cert, --timeout (all also read from RAFTKV_<NAME>) and --json.
func addClientFlags(fs *flagSet) *clientFlags {
	f := &clientFlags{fs: fs}
	fs.StringVar(&f.addr, "addr", "http://127.0.0.1:8080", "HTTP address of any node")
	fs.StringVar(&f.endpoints, "endpoints", "", "HTTP addresses of several nodes, comma-separated: the command goes to the leader\nand moves to another node when one does not answer (with --addr, that one is tried first)")
	fs.StringVar(&f.token, "token", "", "bearer token, when the cluster requires one (visible in ps: prefer --token-file or RAFTKV_TOKEN)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read the bearer token from this file")
	fs.StringVar(&f.caCert, "ca-cert", "", "CA certificate (PEM) to verify an https:// node (default: system roots)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time limit of the request, retries included (backup and restore have none)")
	fs.bindEnv(nil, "addr", "endpoints", "token", "token-file", "ca-cert", "timeout")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of human output")
	return f
}

// addrs returns the endpoints: --endpoints, after --addr when it is set too;
// --addr (or its default) alone otherwise.
func (f *clientFlags) addrs() []string {
	var out []string
	if f.endpoints == "" || f.fs == nil || f.fs.isSet("addr") {
		out = append(out, f.addr)
	}
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func (f *clientFlags) client() (*client, error) {
	if f.timeout < 0 || f.timeout == 0 && f.fs != nil && f.fs.isSet("timeout") { // backup and restore set 0: none
		return nil, usagef("--timeout must be positive, not %v", f.timeout)
	}
	tok, err := f.bearer()
	if err != nil {
		return nil, err
	}
	return newClientEndpoints(f.addrs(), tok, f.caCert, f.timeout, false)
}

// bearer returns the token: --token, or the content of --token-file.
func (f *clientFlags) bearer() (string, error) {
	if f.tokenFile == "" {
		return f.token, nil
	}
	if f.token != "" {
		return "", usagef("--token and --token-file are exclusive (RAFTKV_TOKEN sets --token)")
	}
	tok, err := kvclient.ReadTokenFile(f.tokenFile)
	if err != nil {
		return "", usageError{"--token-file: " + err.Error()}
	}
	return tok, nil
}

// client is the CLI's handle on the cluster: the client package (routing,
// failover, safe retries, errors), plus the raw calls the commands make.
type client struct {
	base    string // the first endpoint, for messages
	token   string
	hc      *http.Client // the client package's transport
	api     *kvclient.Client
	timeout time.Duration // each call's limit, retries included; 0: none
}

// apiError is an error answer of the API.
type apiError = kvclient.Error

// newClient returns a client of the node at addr ("http://host:port";
// "host:port" means http://, or https:// when httpsDefault). timeout bounds
// each whole request; 0 means none.
func newClient(addr, token, caFile string, timeout time.Duration, httpsDefault bool) (*client, error) {
	return newClientEndpoints([]string{addr}, token, caFile, timeout, httpsDefault)
}

// newClientEndpoints is newClient with several nodes.
func newClientEndpoints(addrs []string, token, caFile string, timeout time.Duration, httpsDefault bool) (*client, error) {
	if len(addrs) == 0 || addrs[0] == "" {
		return nil, errors.New("no address")
	}
	eps := make([]string, len(addrs))
	for i, addr := range addrs {
		if !strings.Contains(addr, "://") && httpsDefault {
			addr = "https://" + addr
		}
		eps[i] = addr
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificate found", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	hc := &http.Client{Transport: tr}
	cfg := kvclient.DefaultConfig()
	cfg.Endpoints, cfg.Token, cfg.HTTPClient = eps, token, hc
	api, err := kvclient.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	return &client{base: api.Endpoints()[0], token: token, hc: hc, api: api, timeout: timeout}, nil
}

// at returns a copy of c whose calls all go to its first endpoint, with no
// failover (retries stay there): for what is about one node (status).
func (c *client) at() (*client, error) {
	return c.pin(c.base)
}

// pin returns a copy of c whose calls all go to addr, with no failover.
func (c *client) pin(addr string) (*client, error) {
	api, err := c.api.At(addr)
	if err != nil {
		return nil, err
	}
	cc := *c
	cc.api, cc.base = api, addr
	return &cc, nil
}

// answering is at() for a command that shows one node's view (status,
// members): the first endpoint that answers at all (any HTTP status), so
// that with several endpoints the command works while a node is down. A
// node that accepts the connection but does not answer (a stopped process)
// is given answerWait.
func (c *client) answering(ctx context.Context) (*client, error) {
	eps := c.api.Endpoints()
	if len(eps) == 1 {
		return c.at()
	}
	var errs []string
	for _, ep := range eps {
		pc, err := c.pin(ep)
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, answerWait)
		resp, err := pc.api.Do(pctx, kvclient.Request{Method: http.MethodGet, Path: "/v1/version", Once: true})
		cancel()
		var ae *apiError
		if err == nil {
			resp.Body.Close()
			return pc, nil
		} else if errors.As(err, &ae) && ae.Status != 0 {
			return pc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Sprintf("%s: %v", ep, err))
	}
	return nil, fmt.Errorf("%w: %s", kvclient.ErrUnavailable, strings.Join(errs, "; "))
}

// answerWait bounds how long answering waits for each node.
const answerWait = 3 * time.Second

// sizedReader is a request body of known length.
type sizedReader struct {
	io.Reader
	n int64
}

// retryable reports whether a request that failed with err may succeed if
// sent again: a network error, a 5xx or 429 answer.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status != 0 {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled)
}

// withTimeout bounds a call by the client's timeout.
func (c *client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// request sends a request through the client package and returns the
// response of a 2xx answer, whose body the caller closes; any other answer
// becomes an *apiError. A request other than GET is a write (see the
// client package's retries); a body of a known size (sizedReader) or of
// unknown size (any reader but a bytes.Reader) is streamed, and not retried.
func (c *client) request(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string) (*http.Response, error) {
	req := kvclient.Request{Method: method, Path: path, Query: query, ContentType: contentType,
		Write: method != http.MethodGet, Leader: method != http.MethodGet || query.Get("consistency") != "stale"}
	switch b := body.(type) {
	case nil:
	case sizedReader:
		req.Stream, req.StreamSize = b.Reader, b.n
	case *bytes.Reader:
		data, err := io.ReadAll(b)
		if err != nil {
			return nil, err
		}
		req.Body = data
	default:
		req.Stream, req.StreamSize = b, -1
	}
	ctx, cancel := c.withTimeout(ctx)
	resp, err := c.api.Do(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelBody{resp.Body, cancel}
	return resp, nil
}

// cancelBody ends the call's context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// doJSON sends in (if not nil) as JSON and decodes a JSON answer into out
// (if not nil).
func (c *client) doJSON(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(data), "application/json"
	}
	resp, err := c.request(ctx, method, path, query, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return decodeBody(resp, out)
}

// decodeBody decodes a JSON answer.
func decodeBody(resp *http.Response, out any) error {
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the answer of %s %s: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// stdin is where commands read a value given as "-"; tests replace it.
var stdin io.Reader = os.Stdin

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// keyPath is the API path of a key, percent-encoded ("a/b" → /v1/kv/a%2Fb).
func keyPath(key string) string { return kvclient.KeyPath(key) }

// parseClient is the prologue of a command that talks to a node: it parses
// args with fs, checks that min to max positional arguments are left
// (needArgs, max < 0: no bound) and makes the client of cf.
func parseClient(fs *flagSet, cf *clientFlags, args []string, min, max int) ([]string, *client, error) {
	pos, err := fs.parse(args)
	if err == nil {
		err = needArgs(pos, min, max)
	}
	if err != nil {
		return nil, nil, err
	}
	c, err := cf.client()
	return pos, c, err
}

// needArgs checks the number of positional arguments.
func needArgs(pos []string, min, max int) error {
	switch {
	case len(pos) < min:
		return usagef("missing arguments (want %d, got %d)", min, len(pos))
	case max >= 0 && len(pos) > max:
		return usagef("too many arguments (want at most %d, got %d)", max, len(pos))
	}
	return nil
}
