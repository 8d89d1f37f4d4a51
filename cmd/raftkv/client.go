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
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	addr    string
	token   string
	caCert  string
	timeout time.Duration
	json    bool
}

// addClientFlags defines --addr, --token, --ca-cert, --timeout (all also read
// from RAFTKV_<NAME>) and --json.
func addClientFlags(fs *flagSet) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&f.addr, "addr", "http://127.0.0.1:8080", "HTTP address of any node")
	fs.StringVar(&f.token, "token", "", "bearer token, when the cluster requires one")
	fs.StringVar(&f.caCert, "ca-cert", "", "CA certificate (PEM) to verify an https:// node (default: system roots)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time limit of the request (backup and restore have none)")
	fs.bindEnv(nil, "addr", "token", "ca-cert", "timeout")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of human output")
	return f
}

func (f *clientFlags) client() (*client, error) {
	return newClient(f.addr, f.token, f.caCert, f.timeout, false)
}

// client calls one node's HTTP API.
type client struct {
	base  string // scheme://host:port, no trailing slash
	token string
	hc    *http.Client
}

// newClient returns a client of the node at addr ("http://host:port";
// "host:port" means http://, or https:// when httpsDefault). timeout bounds
// each whole request; 0 means none.
func newClient(addr, token, caFile string, timeout time.Duration, httpsDefault bool) (*client, error) {
	if addr == "" {
		return nil, errors.New("no address")
	}
	if !strings.Contains(addr, "://") {
		if httpsDefault {
			addr = "https://" + addr
		} else {
			addr = "http://" + addr
		}
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("address %q: want http://host:port or https://host:port", addr)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
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
	return &client{
		base:  u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"),
		token: token,
		hc:    &http.Client{Transport: tr, Timeout: timeout},
	}, nil
}

// sizedReader is a request body of known length.
type sizedReader struct {
	io.Reader
	n int64
}

// apiError is an error answer of the API: {"error":{"code","message"}}.
type apiError struct {
	Status     int
	Code       string
	Message    string
	PluginCode int
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code == "" {
		return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
	}
	if e.Code == "plugin_error" {
		return fmt.Sprintf("%s (%s %d, HTTP %d)", msg, e.Code, e.PluginCode, e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Code, e.Status)
}

// retryable reports whether a request that failed with err may succeed if
// sent again: a network error, a 5xx or 429 answer.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled)
}

// request sends a request and returns the response of a 2xx answer, whose
// body the caller closes; any other answer becomes an *apiError.
func (c *client) request(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if s, ok := body.(sizedReader); ok {
		req.ContentLength = s.n
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			PluginCode int    `json:"plugin_code"`
		} `json:"error"`
	}
	ae := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
		ae.Code, ae.Message, ae.PluginCode = e.Error.Code, e.Error.Message, e.Error.PluginCode
	} else {
		ae.Message = strings.TrimSpace(string(data))
	}
	return nil, ae
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
func keyPath(key string) string { return "/v1/kv/" + url.PathEscape(key) }

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
