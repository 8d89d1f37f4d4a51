package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// PluginInfo describes an active plugin (GET /v1/plugins).
type PluginInfo struct {
	Name        string `json:"name"`
	ABIVersion  int    `json:"abi_version"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	Hash        string `json:"hash"` // hex sha256 of the module
	Size        int    `json:"size"`
	ActiveSince uint64 `json:"active_since"` // the log index that activated it
	HasMigrate  bool   `json:"has_migrate"`
	Keys        int    `json:"keys"`
	Bytes       int64  `json:"bytes"` // the state's keys and values
}

// KeptState is the state of a plugin removed without dropState (GET
// /v1/plugins?all=true): RemovePlugin(name, true) deletes it.
type KeptState struct {
	Name  string `json:"name"`
	Keys  int    `json:"keys"`
	Bytes int64  `json:"bytes"`
}

// Digest is a hash of a plugin's state on the answering node.
type Digest struct {
	Plugin       string `json:"plugin"`
	Digest       string `json:"digest"`
	AppliedIndex uint64 `json:"applied_index"`
	Keys         int    `json:"keys"`
}

func pluginPath(name string) string { return "/v1/plugins/" + url.PathEscape(name) }

// Command sends a command (a write) to a plugin: cmd and the result are
// MsgPack, passed through as they are.
func (c *Client) Command(ctx context.Context, plugin string, cmd []byte, opts ...CallOption) ([]byte, error) {
	req := options(opts).write(http.MethodPost, pluginPath(plugin)+"/commands", nil)
	return c.msgpackCall(ctx, req, cmd)
}

// Query sends a query (a read) to a plugin, MsgPack in and out.
func (c *Client) Query(ctx context.Context, plugin string, query []byte, opts ...CallOption) ([]byte, error) {
	req := options(opts).read(http.MethodPost, pluginPath(plugin)+"/queries", nil)
	return c.msgpackCall(ctx, req, query)
}

func (c *Client) msgpackCall(ctx context.Context, req Request, body []byte) ([]byte, error) {
	req.Body, req.ContentType = body, "application/msgpack"
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Accept", "application/msgpack")
	resp, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readAll(resp)
}

// CommandJSON sends cmd, marshalled to JSON (the node converts it to a
// MsgPack map), and decodes the JSON form of the result into result (if not
// nil). See docs/api.md for the conversions ({"$b64": ...} for bytes).
func (c *Client) CommandJSON(ctx context.Context, plugin string, cmd, result any, opts ...CallOption) error {
	req := options(opts).write(http.MethodPost, pluginPath(plugin)+"/commands", nil)
	return c.jsonCall(ctx, req, cmd, result)
}

// QueryJSON is Query with JSON, as CommandJSON.
func (c *Client) QueryJSON(ctx context.Context, plugin string, query, result any, opts ...CallOption) error {
	req := options(opts).read(http.MethodPost, pluginPath(plugin)+"/queries", nil)
	return c.jsonCall(ctx, req, query, result)
}

func (c *Client) jsonCall(ctx context.Context, req Request, in, out any) error {
	var raw json.RawMessage
	if err := c.doJSON(ctx, req, in, &raw); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// Deploy installs a WebAssembly module as the new plugin name, on every
// node; an invalid module is refused with the reason (ErrBadRequest).
// Deploying onto an active plugin is refused (ErrPrecondition) unless the
// plugin already runs this module: replacing its module is Upgrade.
func (c *Client) Deploy(ctx context.Context, name string, wasm []byte) (PluginInfo, error) {
	return c.deploy(ctx, name, wasm, nil)
}

// Upgrade replaces the module of the active plugin name, which must run
// the module whose hash is from ("*": any), keeping its state; the new
// module's migration runs once, on every node. A plugin that runs another
// module is not changed (ErrPrecondition), nor one whose new module names
// itself differently in its info (ErrConflict: a wrong file, most likely).
func (c *Client) Upgrade(ctx context.Context, name, from string, wasm []byte) (PluginInfo, error) {
	return c.deploy(ctx, name, wasm, http.Header{"If-Match": {strconv.Quote(strings.TrimPrefix(from, "sha256:"))}})
}

func (c *Client) deploy(ctx context.Context, name string, wasm []byte, h http.Header) (PluginInfo, error) {
	var info PluginInfo
	req := Request{Method: http.MethodPut, Path: pluginPath(name), Body: wasm, ContentType: "application/wasm", Header: h,
		Write: true, Leader: true,
		Idempotent: true} // deploying the module a plugin already runs changes nothing
	err := c.doJSON(ctx, req, nil, &info)
	return info, err
}

// Plugins lists the active plugins. Without WithConsistency the answering
// node's table is read (the server's default, stale); Leader and
// Linearizable read the leader's table, so that a deploy or removal that
// returned shows (the client sends them to the leader when it knows it;
// a follower asks the leader).
func (c *Client) Plugins(ctx context.Context, opts ...CallOption) ([]PluginInfo, error) {
	plugins, _, err := c.pluginList(ctx, false, opts)
	return plugins, err
}

// KeptStates lists the state kept by plugins removed without dropState,
// with the consistency of Plugins.
func (c *Client) KeptStates(ctx context.Context, opts ...CallOption) ([]KeptState, error) {
	_, kept, err := c.pluginList(ctx, true, opts)
	return kept, err
}

func (c *Client) pluginList(ctx context.Context, all bool, opts []CallOption) ([]PluginInfo, []KeptState, error) {
	var out struct {
		Plugins    []PluginInfo `json:"plugins"`
		KeptStates []KeptState  `json:"kept_states"`
	}
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	o := options(opts)
	req := o.read(http.MethodGet, "/v1/plugins", q)
	req.Leader = o.consistency != "" && o.consistency != Stale
	err := c.doJSON(ctx, req, nil, &out)
	return out.Plugins, out.KeptStates, err
}

// RemovePlugin deactivates a plugin, dropping its state if dropState; without
// it the state is kept (KeptStates lists it), and RemovePlugin(name, true)
// on the removed plugin deletes it later.
func (c *Client) RemovePlugin(ctx context.Context, name string, dropState bool) error {
	q := url.Values{}
	if dropState {
		q.Set("drop_state", "true")
	}
	return gone(c.doJSON(ctx, Request{Method: http.MethodDelete, Path: pluginPath(name), Query: q, Write: true, Leader: true, Idempotent: true}, nil, nil))
}

// Digest returns a hash of a plugin's state on the answering node (use At
// to ask a given node).
func (c *Client) Digest(ctx context.Context, plugin string) (Digest, error) {
	var d Digest
	err := c.doJSON(ctx, Request{Method: http.MethodGet, Path: pluginPath(plugin) + "/digest"}, nil, &d)
	return d, err
}
