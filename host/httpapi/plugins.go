package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

// pluginInput reads a plugin command or query into dst: MsgPack as is (after
// a bounds check and a check that no map has a key twice), JSON converted to
// MsgPack.
func (a *API) pluginInput(w http.ResponseWriter, r *http.Request, dst *buffer, scratch *buffer) error {
	var err error
	switch mt, ct := requestMedia(r); mt {
	case mediaMsgpack:
		if dst.b, err = readBody(w, r, dst.b[:0], a.cfg.MaxBodyBytes); err != nil {
			return err
		}
		if err := abi.Validate(dst.b); err != nil {
			return badRequest("malformed MsgPack body: %v", err)
		}
		if err := uniqueMapKeys(dst.b); err != nil {
			return err
		}
	case mediaJSON, mediaNone, mediaForm:
		if scratch.b, err = readBody(w, r, scratch.b[:0], a.cfg.MaxBodyBytes); err != nil {
			return err
		}
		if dst.b, err = jsonToMsgpack(dst.b[:0], scratch.b); err != nil {
			return err
		}
		if len(dst.b) > abi.MaxCommandSize {
			return tooLarge("command of %d bytes exceeds the %d-byte limit", len(dst.b), abi.MaxCommandSize)
		}
	default:
		return unsupportedMedia(ct, "application/json or application/msgpack")
	}
	return nil
}

// writeResult answers with a plugin's successful result: MsgPack as is when
// the client accepts it, else converted to JSON.
func writeResult(w http.ResponseWriter, r *http.Request, data []byte, scratch *buffer) {
	if wantsMsgpack(r) {
		h := w.Header()
		h.Set("Content-Type", "application/msgpack")
		h.Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data)
		return
	}
	scratch.b = append(msgpackToJSON(scratch.b[:0], data), '\n')
	writeJSONBytes(w, scratch.b)
}

func pluginName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := host.ValidPluginName(name); err != nil {
		return "", err
	}
	return name, nil
}

// pluginCommand serves POST /v1/plugins/{name}/commands.
func (a *API) pluginCommand(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	cmd, scratch := getBuffer(), getBuffer()
	defer cmd.free()
	defer scratch.free()
	if err := a.pluginInput(w, r, cmd, scratch); err != nil {
		return err
	}
	if name == kvPlugin { // reject what the plugin would reject before it reaches the log
		if _, err := kvstore.ParseCommand(cmd.b); err != nil {
			return err
		}
	}
	res, err := a.apply(ctx, r, name, cmd.b)
	if err := resultErr(res, err); err != nil {
		return err
	}
	writeResult(w, r, res.Data, scratch)
	return nil
}

// pluginQuery serves POST /v1/plugins/{name}/queries?consistency=.
func (a *API) pluginQuery(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	level, err := consistencyParam(r)
	if err != nil {
		return err
	}
	q, scratch := getBuffer(), getBuffer()
	defer q.free()
	defer scratch.free()
	if err := a.pluginInput(w, r, q, scratch); err != nil {
		return err
	}
	res, err := a.node.Query(ctx, name, q.b, level)
	if err := resultErr(res, err); err != nil {
		return err
	}
	writeResult(w, r, res.Data, scratch)
	return nil
}

// pluginDeploy serves PUT /v1/plugins/{name}: deploy a module, or upgrade
// one (If-Match: its current hash), with limits (deployOptions).
func (a *API) pluginDeploy(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	opts, err := deployOptions(r)
	if err != nil {
		return err
	}
	switch mt, ct := requestMedia(r); mt {
	case mediaWasm, mediaOctet, mediaNone:
	default:
		return unsupportedMedia(ct, "application/wasm or application/octet-stream")
	}
	wasm, err := readBody(w, r, nil, abi.MaxModuleSize)
	if err != nil {
		return err
	}
	info, err := a.node.DeployPluginWith(ctx, name, wasm, opts)
	if err != nil {
		return err
	}
	return writeJSON(w, info)
}

// tableConsistency reads the ?consistency= of a read of the plugin table:
// stale (this node's table) by default.
func tableConsistency(r *http.Request) (host.Consistency, error) {
	s, ok, err := queryValue(r.URL.RawQuery, "consistency")
	if err != nil || !ok {
		return host.Stale, err
	}
	return host.ParseConsistency(s)
}

// pluginList serves GET /v1/plugins?consistency=&all=.
//
// ?consistency= is stale by default (this node's table); leader and
// linearizable answer the leader's table (a follower asks the leader, as
// for a query), so a deploy or removal that returned shows on any node.
// ?all=true adds "kept_states": the state of plugins removed without
// drop_state.
func (a *API) pluginList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	level, err := tableConsistency(r)
	if err != nil {
		return err
	}
	all := false
	if s, ok, err := queryValue(r.URL.RawQuery, "all"); err != nil {
		return err
	} else if ok {
		if all, err = strconv.ParseBool(s); err != nil {
			return badRequest("bad all value %q: want true or false", s)
		}
	}
	plugins, kept, err := a.node.PluginsAt(ctx, level)
	if err != nil {
		return err
	}
	if plugins == nil {
		plugins = []host.PluginInfo{}
	}
	out := struct {
		Plugins    []host.PluginInfo `json:"plugins"`
		KeptStates *[]host.KeptState `json:"kept_states,omitempty"`
	}{Plugins: plugins}
	if all {
		if kept == nil {
			kept = []host.KeptState{}
		}
		out.KeptStates = &kept
	}
	return writeJSON(w, out)
}

// pluginRemove serves DELETE /v1/plugins/{name}?drop_state=true.
func (a *API) pluginRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	drop := false
	if s, ok, err := queryValue(r.URL.RawQuery, "drop_state"); err != nil {
		return err
	} else if ok {
		if drop, err = strconv.ParseBool(s); err != nil {
			return badRequest("bad drop_state value %q: want true or false", s)
		}
	}
	if err := a.node.RemovePlugin(ctx, name, drop); err != nil {
		return err
	}
	if drop {
		writeJSONBytes(w, []byte("{\"state_kept\":false}\n"))
	} else {
		writeJSONBytes(w, []byte("{\"state_kept\":true}\n")) // GET /v1/plugins?all=true lists it
	}
	return nil
}

// pluginDigest serves GET /v1/plugins/{name}/digest.
func (a *API) pluginDigest(_ context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	d, err := a.node.StateDigest(name)
	if err != nil {
		return err
	}
	return writeJSON(w, d)
}
