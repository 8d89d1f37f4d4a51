package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// Consistency is a read's consistency level (docs/api.md).
type Consistency string

const (
	// Stale reads the answering node's own state, whatever its lag.
	Stale Consistency = "stale"
	// Leader reads the leader's state (the default): it may miss a write
	// a partitioned old leader has not learnt it lost.
	Leader Consistency = "leader"
	// Linearizable confirms leadership with a quorum before reading.
	Linearizable Consistency = "linearizable"
)

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	consistency    Consistency
	idempotencyKey string
}

// WithConsistency sets a read's consistency level (default Leader).
func WithConsistency(c Consistency) CallOption { return func(o *callOptions) { o.consistency = c } }

// WithIdempotencyKey sets a write's idempotency key, instead of a fresh
// random one: a write sent again with the same key (by another process,
// after a crash) returns the first one's result while the cluster still
// remembers the key, instead of being applied twice.
func WithIdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idempotencyKey = key }
}

func options(opts []CallOption) callOptions {
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// read is a Request for a read at the options' consistency.
func (o callOptions) read(method, path string, q url.Values) Request {
	if q == nil {
		q = url.Values{}
	}
	if o.consistency != "" {
		q.Set("consistency", string(o.consistency))
	}
	return Request{Method: method, Path: path, Query: q, Leader: o.consistency != Stale}
}

// write is a Request for a write.
func (o callOptions) write(method, path string, q url.Values) Request {
	r := Request{Method: method, Path: path, Query: q, Write: true, Leader: true, Command: true}
	if o.idempotencyKey != "" {
		r.Header = http.Header{"Idempotency-Key": {o.idempotencyKey}}
	}
	return r
}

// KeyPath is the API path of a key, percent-encoded ("a/b" → /v1/kv/a%2Fb;
// "." and ".." with their dots encoded, which the router would clean).
func KeyPath(key string) string { return "/v1/kv/" + pathSegment(key) }

// pathSegment percent-encodes s as one segment of a URL path that reaches
// the server as s: url.PathEscape, and "." and ".." with their dots
// encoded, which the server's router would otherwise clean away.
func pathSegment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}

// Item is a key with its value and version (the log index that last wrote
// it).
type Item struct {
	Key     string
	Value   []byte
	Version uint64
}

// Get reads a key; a missing key is an error matching ErrNotFound.
func (c *Client) Get(ctx context.Context, key string, opts ...CallOption) (Item, error) {
	resp, err := c.Do(ctx, options(opts).read(http.MethodGet, KeyPath(key), nil))
	if err != nil {
		return Item{}, err
	}
	defer resp.Body.Close()
	value, err := readAll(resp)
	if err != nil {
		return Item{}, err
	}
	v, err := strconv.ParseUint(resp.Header.Get("X-Raftkv-Version"), 10, 64)
	if err != nil {
		return Item{}, fmt.Errorf("%w: X-Raftkv-Version %q", ErrBadAnswer, resp.Header.Get("X-Raftkv-Version"))
	}
	return Item{Key: key, Value: value, Version: v}, nil
}

// Put sets a key and returns its new version.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...CallOption) (uint64, error) {
	return c.put(ctx, key, value, nil, opts)
}

// CAS sets a key only if its version is version (0: only if it is absent)
// and returns its new version; otherwise the error matches ErrConflict.
func (c *Client) CAS(ctx context.Context, key string, version uint64, value []byte, opts ...CallOption) (uint64, error) {
	return c.put(ctx, key, value, url.Values{"cas": {strconv.FormatUint(version, 10)}}, opts)
}

func (c *Client) put(ctx context.Context, key string, value []byte, q url.Values, opts []CallOption) (uint64, error) {
	req := options(opts).write(http.MethodPut, KeyPath(key), q)
	req.Body, req.ContentType = value, "application/octet-stream"
	if req.Body == nil {
		req.Body = []byte{}
	}
	var out struct {
		Version uint64 `json:"version"`
	}
	err := c.doJSON(ctx, req, nil, &out)
	return out.Version, err
}

// Delete deletes a key and reports whether it existed.
func (c *Client) Delete(ctx context.Context, key string, opts ...CallOption) (bool, error) {
	return c.delete(ctx, key, nil, opts)
}

// CompareAndDelete deletes a key only if its version is version; otherwise
// the error matches ErrConflict.
func (c *Client) CompareAndDelete(ctx context.Context, key string, version uint64, opts ...CallOption) (bool, error) {
	return c.delete(ctx, key, url.Values{"cas": {strconv.FormatUint(version, 10)}}, opts)
}

func (c *Client) delete(ctx context.Context, key string, q url.Values, opts []CallOption) (bool, error) {
	var out struct {
		Deleted bool `json:"deleted"`
	}
	err := c.doJSON(ctx, options(opts).write(http.MethodDelete, KeyPath(key), q), nil, &out)
	return out.Deleted, err
}

// ListRequest selects keys: those with Prefix, or those in [Start, End)
// (End "" means no bound). Limit is 1–10000 (0: the API's default, 100).
type ListRequest struct {
	Prefix, Start, End string
	Limit              int
}

// ListPage is one page of a listing. When More, pass Next as the next
// request's Start (with the same End or Prefix... as End) to continue.
type ListPage struct {
	Items []Item
	Next  string
	More  bool
}

// List lists keys in order, one page.
func (c *Client) List(ctx context.Context, lr ListRequest, opts ...CallOption) (ListPage, error) {
	q := url.Values{}
	if lr.Prefix != "" {
		q.Set("prefix", lr.Prefix)
	}
	if lr.Start != "" {
		q.Set("start", lr.Start)
	}
	if lr.End != "" {
		q.Set("end", lr.End)
	}
	if lr.Limit > 0 {
		q.Set("limit", strconv.Itoa(lr.Limit))
	}
	var out struct {
		Items   []jsonItem `json:"items"`
		Next    *string    `json:"next"`
		NextB64 *string    `json:"next_b64"`
	}
	if err := c.doJSON(ctx, options(opts).read(http.MethodGet, "/v1/kv", q), nil, &out); err != nil {
		return ListPage{}, err
	}
	page := ListPage{Items: make([]Item, 0, len(out.Items))}
	for _, it := range out.Items {
		item, err := it.item()
		if err != nil {
			return ListPage{}, err
		}
		page.Items = append(page.Items, item)
	}
	switch {
	case out.NextB64 != nil:
		b, err := base64.StdEncoding.DecodeString(*out.NextB64)
		if err != nil {
			return ListPage{}, fmt.Errorf("%w: next_b64: %v", ErrBadAnswer, err)
		}
		page.Next, page.More = string(b), true
	case out.Next != nil:
		page.Next, page.More = *out.Next, true
	}
	return page, nil
}

// ListAll lists every key lr selects, following pages, up to max items (0:
// no limit).
func (c *Client) ListAll(ctx context.Context, lr ListRequest, max int, opts ...CallOption) ([]Item, error) {
	var items []Item
	for {
		if max > 0 && lr.Limit == 0 || max > 0 && lr.Limit > max-len(items) {
			lr.Limit = min(max-len(items), 10000)
		}
		page, err := c.List(ctx, lr, opts...)
		if err != nil {
			return items, err
		}
		items = append(items, page.Items...)
		if !page.More || max > 0 && len(items) >= max {
			return items, nil
		}
		if lr.Prefix != "" && lr.End == "" {
			lr.End = prefixEnd(lr.Prefix)
			lr.Prefix = ""
		}
		lr.Start = page.Next
	}
}

// prefixEnd is the first key after every key with prefix p ("" if none).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// jsonItem is an item as the API encodes it in JSON: UTF-8 bytes as strings,
// other bytes base64 in the _b64 fields.
type jsonItem struct {
	Key      *string `json:"key,omitempty"`
	KeyB64   *string `json:"key_b64,omitempty"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
	Version  uint64  `json:"version,omitempty"`
}

func (it jsonItem) item() (Item, error) {
	k, err := fromJSON(it.Key, it.KeyB64)
	if err != nil {
		return Item{}, err
	}
	v, err := fromJSON(it.Value, it.ValueB64)
	return Item{Key: string(k), Value: v, Version: it.Version}, err
}

func fromJSON(s, b64 *string) ([]byte, error) {
	switch {
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%w: base64: %v", ErrBadAnswer, err)
		}
		return b, nil
	case s != nil:
		return []byte(*s), nil
	}
	return []byte{}, nil
}

// toJSON sets the string or the base64 field of b.
func toJSON(b []byte) (s, b64 *string) {
	if utf8.Valid(b) {
		v := string(b)
		return &v, nil
	}
	v := base64.StdEncoding.EncodeToString(b)
	return nil, &v
}

// Op is one operation of a transaction: build it with SetOp, DeleteOp,
// CASOp or CompareAndDeleteOp.
type Op struct {
	op      string
	key     string
	value   []byte
	version *uint64
}

// SetOp sets key to value.
func SetOp(key string, value []byte) Op { return Op{op: "SET", key: key, value: value} }

// DeleteOp deletes key.
func DeleteOp(key string) Op { return Op{op: "DELETE", key: key} }

// CASOp sets key to value if its version is version (0: if absent).
func CASOp(key string, version uint64, value []byte) Op {
	return Op{op: "CAS", key: key, value: value, version: &version}
}

// CompareAndDeleteOp deletes key if its version is version.
func CompareAndDeleteOp(key string, version uint64) Op {
	return Op{op: "DELETE", key: key, version: &version}
}

func (o Op) MarshalJSON() ([]byte, error) {
	var j struct {
		Op string `json:"op"`
		jsonItem
		Version *uint64 `json:"version,omitempty"`
	}
	j.Op, j.Version = o.op, o.version
	j.Key, j.KeyB64 = toJSON([]byte(o.key))
	if o.op != "DELETE" {
		j.Value, j.ValueB64 = toJSON(o.value)
		if o.value == nil {
			empty := ""
			j.Value = &empty
		}
	}
	return jsonMarshal(j)
}

// OpResult is the result of one transaction operation: the new version of
// a SET or CAS, whether a DELETE deleted.
type OpResult struct {
	Version uint64 `json:"version"`
	Deleted bool   `json:"deleted"`
}

// Txn runs operations atomically: all or none. A failing operation's error
// names it ("ops[1]: ...") and matches ErrConflict for a failed CAS.
func (c *Client) Txn(ctx context.Context, ops []Op, opts ...CallOption) ([]OpResult, error) {
	if ops == nil {
		ops = []Op{}
	}
	var out struct {
		Results []OpResult `json:"results"`
	}
	err := c.doJSON(ctx, options(opts).write(http.MethodPost, "/v1/txn", nil), map[string]any{"ops": ops}, &out)
	return out.Results, err
}
