package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/host"
)

// limitParams are the names of a plugin's limits, as query parameters of a
// deploy, keys of the Raftkv-Limits header and of PUT .../limits bodies.
var limitParams = []string{"apply_fuel", "query_fuel", "load_fuel", "memory_pages",
	"max_write_bytes", "max_namespace_keys", "max_namespace_bytes", "max_log_bytes"}

// setLimit sets the named field of p from its decimal value.
func setLimit(p *host.LimitsPatch, name, value string) error {
	bits := 64
	if name == "memory_pages" {
		bits = 32
	}
	v, err := strconv.ParseUint(strings.TrimSpace(value), 10, bits)
	if err != nil {
		return badRequest("bad %s %q: want a non-negative integer", name, value)
	}
	switch name {
	case "apply_fuel":
		p.ApplyFuel = &v
	case "query_fuel":
		p.QueryFuel = &v
	case "load_fuel":
		p.LoadFuel = &v
	case "memory_pages":
		pages := uint32(v)
		p.MemoryPages = &pages
	case "max_write_bytes":
		p.MaxWriteBytes = &v
	case "max_namespace_keys":
		p.MaxNamespaceKeys = &v
	case "max_namespace_bytes":
		p.MaxNamespaceBytes = &v
	case "max_log_bytes":
		p.MaxLogBytes = &v
	default:
		return badRequest("unknown limit %q (want one of %s)", name, strings.Join(limitParams, ", "))
	}
	return nil
}

// limitsPatch reads a deploy's limits: query parameters named as the
// limits, and the Raftkv-Limits header ("apply_fuel=1000000, memory_pages=64").
func limitsPatch(r *http.Request) (host.LimitsPatch, error) {
	var p host.LimitsPatch
	for _, h := range r.Header.Values("Raftkv-Limits") {
		for _, kv := range strings.Split(h, ",") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return p, badRequest("bad Raftkv-Limits item %q: want name=value", strings.TrimSpace(kv))
			}
			if err := setLimit(&p, strings.TrimSpace(k), v); err != nil {
				return p, err
			}
		}
	}
	for _, name := range limitParams {
		v, ok, err := queryValue(r.URL.RawQuery, name)
		if err != nil {
			return p, err
		}
		if ok {
			if err := setLimit(&p, name, v); err != nil {
				return p, err
			}
		}
	}
	return p, nil
}

// ifMatch returns the hash an If-Match header names ("*" for any), without
// the quotes of an entity tag and an optional "sha256:" prefix; "" if the
// header is absent.
func ifMatch(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	return strings.TrimPrefix(v, "sha256:")
}

// boolParam parses an optional true/false query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	s, ok, err := queryValue(r.URL.RawQuery, name)
	if err != nil || !ok {
		return false, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest("bad %s value %q: want true or false", name, s)
	}
	return b, nil
}

// deployOptions reads a deploy's options: its limits, If-Match (an upgrade
// of the module of that hash; without it, the plugin must not exist),
// force=true (an upgrade to a module of another raftkv_info name) and
// trusted=true (the module runs without fuel: host.DeployOptions.Trusted).
func deployOptions(r *http.Request) (host.DeployOptions, error) {
	var o host.DeployOptions
	var err error
	if o.Limits, err = limitsPatch(r); err != nil {
		return o, err
	}
	if o.Force, err = boolParam(r, "force"); err != nil {
		return o, err
	}
	if o.Trusted, err = boolParam(r, "trusted"); err != nil {
		return o, err
	}
	o.IfHash = ifMatch(r)
	o.Create = o.IfHash == ""
	return o, nil
}

// pluginGet serves GET /v1/plugins/{name}?consistency=: one plugin's
// info, limits, hash, activation index and counters, from the plugin table
// at the consistency of GET /v1/plugins (stale by default).
func (a *API) pluginGet(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	level, err := tableConsistency(r)
	if err != nil {
		return err
	}
	plugins, _, err := a.node.PluginsAt(ctx, level)
	if err != nil {
		return err
	}
	for _, p := range plugins {
		if p.Name == name {
			w.Header().Set("ETag", strconv.Quote(p.Hash))
			return writeJSON(w, p)
		}
	}
	return &httpError{Status: http.StatusNotFound, Code: "not_found", Message: "no plugin " + strconv.Quote(name) + " is active"}
}

// pluginLimits serves PUT /v1/plugins/{name}/limits: a JSON object of the
// limits to change (the others are kept); If-Match as for a deploy, optional.
func (a *API) pluginLimits(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, nil, 64<<10)
	if err != nil {
		return err
	}
	var p host.LimitsPatch
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeJSON(body, &p); err != nil {
			return err
		}
	}
	q, err := limitsPatch(r)
	if err != nil {
		return err
	}
	p = mergePatch(p, q)
	info, err := a.node.SetPluginLimits(ctx, name, p, ifMatch(r))
	if err != nil {
		return err
	}
	return writeJSON(w, info)
}

// mergePatch returns p with q's fields set over it.
func mergePatch(p, q host.LimitsPatch) host.LimitsPatch {
	pick := func(a, b *uint64) *uint64 {
		if b != nil {
			return b
		}
		return a
	}
	p.ApplyFuel, p.QueryFuel, p.LoadFuel = pick(p.ApplyFuel, q.ApplyFuel), pick(p.QueryFuel, q.QueryFuel), pick(p.LoadFuel, q.LoadFuel)
	if q.MemoryPages != nil {
		p.MemoryPages = q.MemoryPages
	}
	p.MaxWriteBytes, p.MaxNamespaceKeys = pick(p.MaxWriteBytes, q.MaxWriteBytes), pick(p.MaxNamespaceKeys, q.MaxNamespaceKeys)
	p.MaxNamespaceBytes, p.MaxLogBytes = pick(p.MaxNamespaceBytes, q.MaxNamespaceBytes), pick(p.MaxLogBytes, q.MaxLogBytes)
	return p
}

// pluginReset serves POST /v1/plugins/kv/reset: the built-in kv module is
// deployed again, with the default limits; the state is kept.
func (a *API) pluginReset(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	if name != host.DefaultPluginName {
		return badRequest("only the default plugin %q has a built-in module to reset to", host.DefaultPluginName)
	}
	info, err := a.node.ResetDefaultPlugin(ctx)
	if err != nil {
		return err
	}
	return writeJSON(w, info)
}

// pluginQuarantine serves POST /v1/plugins/{name}/quarantine?reason=: the
// plugin's commands and queries are refused from that log entry on, until a
// module is deployed for it again; a node that stopped applying at one of
// its entries refuses that entry and applies the log again. A fail-stopped
// leader accepts it.
func (a *API) pluginQuarantine(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, err := pluginName(r)
	if err != nil {
		return err
	}
	reason, _, err := queryValue(r.URL.RawQuery, "reason")
	if err != nil {
		return err
	}
	if err := a.node.QuarantinePlugin(ctx, name, reason); err != nil {
		return err
	}
	writeJSONBytes(w, []byte("{}\n"))
	return nil
}
