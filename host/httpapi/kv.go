package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

// kvPlugin is the plugin behind the key-value endpoints.
const kvPlugin = host.DefaultPluginName

// resultErr returns the node's error, or the plugin's error for a non-OK
// result.
func resultErr(res abi.Result, err error) error {
	if err != nil {
		return err
	}
	return res.Err()
}

func checkKey(key string) error {
	if key == "" {
		return badRequest("empty key")
	}
	if len(key) > abi.MaxKeySize {
		return tooLarge("key too large: %d bytes (max %d)", len(key), abi.MaxKeySize)
	}
	return nil
}

// consistencyParam parses the consistency query parameter (default leader).
func consistencyParam(r *http.Request) (host.Consistency, error) {
	if r.URL.RawQuery == "" {
		return host.Leader, nil
	}
	s, _, err := queryValue(r.URL.RawQuery, "consistency")
	if err != nil {
		return 0, err
	}
	return host.ParseConsistency(s)
}

// kvPut serves PUT /v1/kv/{key}[?cas=N]: SET, or CAS with ?cas.
func (a *API) kvPut(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := checkKey(key); err != nil {
		return err
	}
	op := kvstore.OpSet
	version, isCAS, err := uintParam(r, "cas")
	if err != nil {
		return err
	}
	if isCAS {
		op = kvstore.OpCAS
	}
	limit := min(a.cfg.MaxBodyBytes, abi.MaxValueSize)
	if r.ContentLength > abi.MaxValueSize {
		return tooLarge("value too large: %d bytes (max %d)", r.ContentLength, abi.MaxValueSize)
	}
	buf := getBuffer()
	defer buf.free()
	if r.ContentLength >= 0 {
		// The value is read straight into the command, after its header.
		buf.b = kvstore.AppendSetHead(buf.b[:0], op, key, int(r.ContentLength))
		if buf.b, err = readBody(w, r, buf.b, limit); err != nil {
			return err
		}
	} else {
		val := getBuffer()
		defer val.free()
		if val.b, err = readBody(w, r, val.b[:0], limit); err != nil {
			return err
		}
		buf.b = kvstore.AppendSetHead(buf.b[:0], op, key, len(val.b))
		buf.b = append(buf.b, val.b...)
	}
	if isCAS {
		buf.b = kvstore.AppendCASVersion(buf.b, version)
	}
	res, err := a.apply(ctx, r, kvPlugin, buf.b)
	if err := resultErr(res, err); err != nil {
		return err
	}
	v, err := kvstore.ParseSetResult(res.Data)
	if err != nil {
		return err
	}
	b := append(buf.b[:0], `{"version":`...)
	b = strconv.AppendUint(b, v, 10)
	buf.b = append(b, "}\n"...)
	writeJSONBytes(w, buf.b)
	return nil
}

// kvGet serves GET /v1/kv/{key}: the raw value and X-Raftkv-Version.
func (a *API) kvGet(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := checkKey(key); err != nil {
		return err
	}
	level, err := consistencyParam(r)
	if err != nil {
		return err
	}
	buf := getBuffer()
	defer buf.free()
	buf.b = kvstore.AppendGet(buf.b[:0], key)
	res, err := a.node.Query(ctx, kvPlugin, buf.b, level)
	if err := resultErr(res, err); err != nil {
		return err
	}
	value, version, err := kvstore.ParseGetResult(res.Data)
	if err != nil {
		return err
	}
	h := w.Header()
	h["Content-Type"] = ctOctetStream
	h["Content-Length"] = []string{strconv.Itoa(len(value))}
	h["X-Raftkv-Version"] = []string{strconv.FormatUint(version, 10)}
	w.WriteHeader(http.StatusOK)
	w.Write(value)
	return nil
}

// kvDelete serves DELETE /v1/kv/{key}[?cas=N].
func (a *API) kvDelete(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := checkKey(key); err != nil {
		return err
	}
	version, isCAS, err := uintParam(r, "cas")
	if err != nil {
		return err
	}
	buf := getBuffer()
	defer buf.free()
	buf.b = kvstore.AppendDelete(buf.b[:0], key, version, isCAS)
	res, err := a.apply(ctx, r, kvPlugin, buf.b)
	if err := resultErr(res, err); err != nil {
		return err
	}
	deleted, err := kvstore.ParseDeleteResult(res.Data)
	if err != nil {
		return err
	}
	if deleted {
		writeJSONBytes(w, []byte("{\"deleted\":true}\n"))
	} else {
		writeJSONBytes(w, []byte("{\"deleted\":false}\n"))
	}
	return nil
}

// kvList serves GET /v1/kv?prefix=&start=&end=&limit=&consistency=.
func (a *API) kvList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	level, err := consistencyParam(r)
	if err != nil {
		return err
	}
	q := kvstore.Query{Op: kvstore.OpList}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{"prefix", &q.Prefix}, {"start", &q.Start}, {"end", &q.End}} {
		v, _, err := queryValue(r.URL.RawQuery, f.name)
		if err != nil {
			return err
		}
		if len(v) > abi.MaxKeySize {
			return tooLarge("%s too large: %d bytes (max %d)", f.name, len(v), abi.MaxKeySize)
		}
		if v != "" {
			*f.dst = []byte(v)
		}
	}
	if s, ok, err := queryValue(r.URL.RawQuery, "limit"); err != nil {
		return err
	} else if ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > kvstore.MaxListLimit {
			return badRequest("bad limit %q: want an integer between 1 and %d", s, kvstore.MaxListLimit)
		}
		q.Limit = n
	}
	buf := getBuffer()
	defer buf.free()
	buf.b = q.AppendMsgpack(buf.b[:0])
	res, err := a.node.Query(ctx, kvPlugin, buf.b, level)
	if err := resultErr(res, err); err != nil {
		return err
	}
	lr, err := kvstore.ParseListResult(res.Data)
	if err != nil {
		return err
	}
	b := append(buf.b[:0], `{"items":[`...)
	for i, it := range lr.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendKVField(b, "key", it.Key)
		b = append(b, ',')
		b = appendKVField(b, "value", it.Value)
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, it.Version, 10)
		b = append(b, '}')
	}
	b = append(b, ']')
	if lr.Next != nil {
		b = append(b, ',')
		b = appendKVField(b, "next", lr.Next)
	}
	buf.b = append(b, "}\n"...)
	writeJSONBytes(w, buf.b)
	return nil
}

// appendKVField appends "name":"<utf-8>" or "name_b64":"<base64>".
func appendKVField(dst []byte, name string, v []byte) []byte {
	if utf8.Valid(v) {
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
		return appendJSONString(dst, v)
	}
	dst = appendJSONString(dst, name+"_b64")
	dst = append(dst, ':', '"')
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}

// txnOp is one operation of a JSON /v1/txn body.
type txnOp struct {
	Op       string  `json:"op"`
	Key      *string `json:"key"`
	KeyB64   *string `json:"key_b64"`
	Value    *string `json:"value"`
	ValueB64 *string `json:"value_b64"`
	Version  *uint64 `json:"version"`
}

// bytesField resolves a "name" / "name_b64" pair.
func bytesField(i int, name string, s, b64 *string) ([]byte, bool, error) {
	switch {
	case s != nil && b64 != nil:
		return nil, false, badRequest("ops[%d]: give %s or %s_b64, not both", i, name, name)
	case s != nil:
		return []byte(*s), true, nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, false, badRequest("ops[%d]: bad %s_b64: %v", i, name, err)
		}
		return b, true, nil
	}
	return nil, false, nil
}

// txnCommand builds the TXN command of a JSON body.
func txnCommand(body []byte) (kvstore.Command, error) {
	var req struct {
		Ops *[]txnOp `json:"ops"`
	}
	if err := decodeJSON(body, &req); err != nil {
		return kvstore.Command{}, err
	}
	if req.Ops == nil {
		return kvstore.Command{}, badRequest("missing ops")
	}
	cmd := kvstore.Command{Op: kvstore.OpTxn, Ops: make([]kvstore.Command, 0, len(*req.Ops))}
	for i, o := range *req.Ops {
		op, ok := kvstore.ParseOp(o.Op)
		switch {
		case o.Op == "":
			return cmd, badRequest("ops[%d]: missing op", i)
		case !ok:
			return cmd, badRequest("ops[%d]: unknown op %q", i, o.Op)
		case op != kvstore.OpSet && op != kvstore.OpDelete && op != kvstore.OpCAS:
			return cmd, badRequest("ops[%d]: op %q is not allowed in a TXN (only SET, DELETE and CAS)", i, o.Op)
		}
		c := kvstore.Command{Op: op}
		key, ok, err := bytesField(i, "key", o.Key, o.KeyB64)
		if err != nil {
			return cmd, err
		}
		if !ok {
			return cmd, badRequest("ops[%d]: missing key", i)
		}
		c.Key = key
		value, ok, err := bytesField(i, "value", o.Value, o.ValueB64)
		if err != nil {
			return cmd, err
		}
		if op != kvstore.OpDelete {
			if !ok {
				return cmd, badRequest("ops[%d]: missing value", i)
			}
			c.Value = value
		}
		if o.Version != nil && op != kvstore.OpSet {
			c.Version, c.HasVersion = *o.Version, true
		}
		if op == kvstore.OpCAS && !c.HasVersion {
			return cmd, badRequest("ops[%d]: missing version", i)
		}
		cmd.Ops = append(cmd.Ops, c)
	}
	return cmd, nil
}

// msgpackTxnCommand builds the TXN command of a MsgPack body {"ops": [...]}.
func msgpackTxnCommand(dst, body []byte) ([]byte, error) {
	if err := abi.Validate(body); err != nil {
		return dst, badRequest("malformed MsgPack body: %v", err)
	}
	if err := uniqueMapKeys(body); err != nil {
		return dst, err
	}
	var ops []byte
	var r mp.Reader
	r.Reset(body)
	n, err := r.ReadMapHeader()
	for i := 0; i < n && err == nil; i++ {
		var name, raw []byte
		if name, err = r.ReadBytes(); err == nil {
			if raw, err = r.ReadRaw(); string(name) == "ops" {
				ops = raw
			}
		}
	}
	if err != nil || r.Len() != 0 {
		return dst, badRequest("malformed MsgPack body: want a map with string field names")
	}
	if ops == nil {
		return dst, badRequest("missing ops")
	}
	return kvstore.AppendTxn(dst, ops), nil
}

// kvTxn serves POST /v1/txn: a JSON (or MsgPack) list of SET, DELETE and CAS
// run all or nothing.
func (a *API) kvTxn(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	body := getBuffer()
	defer body.free()
	buf := getBuffer()
	defer buf.free()
	var err error
	switch mt, ct := requestMedia(r); mt {
	case mediaMsgpack:
		if body.b, err = readBody(w, r, body.b[:0], a.cfg.MaxBodyBytes); err != nil {
			return err
		}
		if buf.b, err = msgpackTxnCommand(buf.b[:0], body.b); err != nil {
			return err
		}
	case mediaJSON, mediaNone, mediaForm:
		if body.b, err = readBody(w, r, body.b[:0], a.cfg.MaxBodyBytes); err != nil {
			return err
		}
		cmd, err := txnCommand(body.b)
		if err != nil {
			return err
		}
		buf.b = cmd.AppendMsgpack(buf.b[:0])
	default:
		return unsupportedMedia(ct, "application/json or application/msgpack")
	}
	// Reject what the plugin would reject before it reaches the log.
	if _, err := kvstore.ParseCommand(buf.b); err != nil {
		return err
	}
	res, err := a.apply(ctx, r, kvPlugin, buf.b)
	if err := resultErr(res, err); err != nil {
		return err
	}
	body.b = append(msgpackToJSON(body.b[:0], res.Data), '\n')
	writeJSONBytes(w, body.b)
	return nil
}

// seedInsert serves the RaftKV seed's POST /insert-val: a MsgPack
// {"op":"SET"|"DELETE","key":…,"value":…}, passed to the kv plugin as is.
func (a *API) seedInsert(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	switch mt, ct := requestMedia(r); mt {
	case mediaMsgpack, mediaNone, mediaOctet:
	default:
		return unsupportedMedia(ct, "application/msgpack")
	}
	buf := getBuffer()
	defer buf.free()
	var err error
	if buf.b, err = readBody(w, r, buf.b[:0], a.cfg.MaxBodyBytes); err != nil {
		return err
	}
	cmd, err := kvstore.ParseCommand(buf.b)
	if err != nil {
		return err
	}
	if err := uniqueMapKeys(buf.b); err != nil { // a repeated field the plugin ignores
		return err
	}
	if cmd.Op != kvstore.OpSet && cmd.Op != kvstore.OpDelete {
		return badRequest("op %s is not supported by /insert-val (SET or DELETE; see /v1/kv and /v1/txn)", cmd.Op)
	}
	res, err := a.apply(ctx, r, kvPlugin, buf.b)
	if err := resultErr(res, err); err != nil {
		return err
	}
	writeText(w, "ok")
	return nil
}

// seedGet serves the RaftKV seed's GET /get-val?key=k.
func (a *API) seedGet(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	key, ok, err := queryValue(r.URL.RawQuery, "key")
	if err != nil {
		return err
	}
	if !ok {
		return badRequest("missing key parameter")
	}
	if err := checkKey(key); err != nil {
		return err
	}
	level, err := consistencyParam(r)
	if err != nil {
		return err
	}
	buf := getBuffer()
	defer buf.free()
	buf.b = kvstore.AppendGet(buf.b[:0], key)
	res, err := a.node.Query(ctx, kvPlugin, buf.b, level)
	if err != nil {
		return err
	}
	if res.Code == abi.CodeNotFound {
		return &httpError{Status: http.StatusNotFound, Code: "not_found", Message: "Key Not Found"}
	}
	if err := res.Err(); err != nil {
		return err
	}
	value, _, err := kvstore.ParseGetResult(res.Data)
	if err != nil {
		return err
	}
	h := w.Header()
	if utf8.Valid(value) {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("Content-Length", strconv.Itoa(len(value)))
	w.WriteHeader(http.StatusOK)
	w.Write(value)
	return nil
}

// writeText answers 200 with a short text.
func writeText(w http.ResponseWriter, s string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(s)))
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(s))
}
