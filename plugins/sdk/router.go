package sdk

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

// Router is a Plugin made of typed handlers, one per operation. Every
// command and query is a MsgPack map whose "op" field (a string) names the
// operation, the convention of every raftkv plugin; the rest of the map is
// the handler's request, decoded into its Req type with Unmarshal, and the
// handler's Resp is encoded with Marshal as the result:
//
//	r := sdk.NewRouter(abi.Info{Name: "counter", Version: "1.0.0"})
//	sdk.Command(r, "add", func(st sdk.State, e sdk.Entry, req AddReq) (Count, error) { … })
//	sdk.Query(r, "get", func(st sdk.State, req struct{}) (Count, error) { … })
//	sdk.Register(r)
//
// The Router answers for the author: an input that is not a map with a
// string "op" field, an unknown op, a query op sent as a command (or the
// reverse), and a request that does not decode into Req all fail with
// abi.CodeBadRequest, naming the problem and the valid ops.
//
// A request type may check itself: if Req (or *Req) has a method
// Check() error, the Router calls it after decoding, and an error from it
// fails the request with abi.CodeBadRequest (an *abi.Error keeps its code).
// Check sees only the request, never the state, so for a command it also
// runs in ValidateCommand, before the command reaches the log: put the
// stateless rules there (a name's syntax, a positive amount).
//
// A Router implements Plugin, Describer (the Info it was made with) and
// Validator (the command decodes into its handler's Req). It is not a
// Migrator (the cluster shows has_migrate false); WithMigration adds a
// migration:
//
//	sdk.Register(r.WithMigration(func(st sdk.State, m abi.Migration) error { … }))
//
// Register the handlers before Register(r) (from init functions); a Router
// is not safe for concurrent registration and use.
type Router struct {
	info     abi.Info
	commands map[string]*route
	queries  map[string]*route
}

type route struct {
	apply    func(st State, e Entry, data []byte) ([]byte, error)
	validate func(data []byte) error
}

var (
	_ Plugin    = (*Router)(nil)
	_ Describer = (*Router)(nil)
	_ Validator = (*Router)(nil)
	_ Migrator  = migratingRouter{}
)

// NewRouter returns a Router with no operations that describes itself with
// info.
func NewRouter(info abi.Info) *Router {
	return &Router{info: info, commands: map[string]*route{}, queries: map[string]*route{}}
}

// Command registers h as the handler of commands whose op is op. It panics if
// op is empty or already registered (as a command or a query).
func Command[Req, Resp any](r *Router, op string, h func(st State, e Entry, req Req) (Resp, error)) {
	r.add(r.commands, op, &route{
		apply: func(st State, e Entry, data []byte) ([]byte, error) {
			req, err := decodeChecked[Req](data)
			if err != nil {
				return nil, err
			}
			resp, err := h(st, e, req)
			if err != nil {
				return nil, err
			}
			return Result(resp)
		},
		validate: func(data []byte) error {
			_, err := decodeChecked[Req](data)
			return err
		},
	})
}

// Query registers h as the handler of queries whose op is op. It panics if op
// is empty or already registered (as a command or a query).
func Query[Req, Resp any](r *Router, op string, h func(st State, req Req) (Resp, error)) {
	r.add(r.queries, op, &route{
		apply: func(st State, _ Entry, data []byte) ([]byte, error) {
			req, err := decodeChecked[Req](data)
			if err != nil {
				return nil, err
			}
			resp, err := h(st, req)
			if err != nil {
				return nil, err
			}
			return Result(resp)
		},
	})
}

// WithMigration returns a Plugin that runs r's handlers and has fn as its
// migration (a Migrator; also a Describer and a Validator, as r is). fn runs
// once, when this module replaces an earlier version of the plugin, and an
// error from it rejects the upgrade. Handlers registered on r later are
// served too.
func (r *Router) WithMigration(fn func(st State, m abi.Migration) error) Plugin {
	return migratingRouter{r, fn}
}

type migratingRouter struct {
	*Router
	migrate func(st State, m abi.Migration) error
}

func (m migratingRouter) Migrate(st State, mg abi.Migration) error { return m.migrate(st, mg) }

// Checker is implemented by request types that check themselves after
// decoding (see Router).
type Checker interface {
	Check() error
}

// decodeChecked decodes a request and runs its Check method, if it has one.
func decodeChecked[Req any](data []byte) (Req, error) {
	req, err := Decode[Req](data)
	if err != nil {
		return req, err
	}
	c, ok := any(&req).(Checker)
	if !ok {
		return req, nil
	}
	if err := c.Check(); err != nil {
		var zero Req
		var ae *abi.Error
		if errors.As(err, &ae) {
			return zero, ae
		}
		return zero, BadRequest("%s", err.Error())
	}
	return req, nil
}

func (r *Router) add(m map[string]*route, op string, rt *route) {
	if op == "" {
		panic("sdk: Router: empty op")
	}
	if r.commands[op] != nil || r.queries[op] != nil {
		panic("sdk: Router: op " + op + " registered twice")
	}
	m[op] = rt
}

// Info implements Describer.
func (r *Router) Info() abi.Info { return r.info }

// Apply implements Plugin: it runs the command's handler.
func (r *Router) Apply(st State, e Entry) ([]byte, error) {
	rt, err := r.route(e.Data, "command", r.commands, r.queries)
	if err != nil {
		return nil, err
	}
	return rt.apply(st, e, e.Data)
}

// Query implements Plugin: it runs the query's handler.
func (r *Router) Query(st State, q []byte) ([]byte, error) {
	rt, err := r.route(q, "query", r.queries, r.commands)
	if err != nil {
		return nil, err
	}
	return rt.apply(st, Entry{}, q)
}

// ValidateCommand implements Validator: the command names a command op and
// decodes into its handler's Req. It sees only the bytes, never the state.
func (r *Router) ValidateCommand(cmd []byte) error {
	rt, err := r.route(cmd, "command", r.commands, r.queries)
	if err != nil {
		return err
	}
	return rt.validate(cmd)
}

func (r *Router) route(data []byte, kind string, own, other map[string]*route) (*route, error) {
	op, err := OpOf(data)
	if err != nil {
		return nil, BadRequest("%s: %s", kind, err.Error())
	}
	if rt := own[op]; rt != nil {
		return rt, nil
	}
	if other[op] != nil {
		otherKind := "query"
		if kind == "query" {
			otherKind = "command"
		}
		return nil, BadRequest("op %s is a %s: send it as a %s, not a %s", quote([]byte(op)), otherKind, otherKind, kind)
	}
	plural := "commands"
	if kind == "query" {
		plural = "queries"
	}
	return nil, BadRequest("unknown %s op %s (%s: %s)", kind, quote([]byte(op)), plural, strings.Join(slices.Sorted(mapKeys(own)), ", "))
}

func mapKeys(m map[string]*route) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// OpOf returns the "op" field of a command or query: data must be a MsgPack
// map with an "op" field whose value is a str (or bin). It reads only the
// map's keys and that value, without decoding anything else.
func OpOf(data []byte) (string, error) {
	var r mp.Reader
	r.Reset(data)
	if r.Peek() != mp.TypeMap {
		return "", errNotMap
	}
	n, err := r.ReadMapHeader()
	if err != nil {
		return "", errNotMap
	}
	for i := 0; i < n; i++ {
		if t := r.Peek(); t != mp.TypeStr && t != mp.TypeBin {
			if r.Skip() != nil || r.Skip() != nil {
				return "", errNotMap
			}
			continue
		}
		k, err := r.ReadBytes()
		if err != nil {
			return "", errNotMap
		}
		if string(k) != "op" {
			if r.Skip() != nil {
				return "", errNotMap
			}
			continue
		}
		if t := r.Peek(); t != mp.TypeStr && t != mp.TypeBin {
			return "", fmt.Errorf(`the "op" field must be a string, not %s`, t)
		}
		op, err := r.ReadBytes()
		if err != nil {
			return "", errNotMap
		}
		return string(op), nil
	}
	return "", errors.New(`missing "op" field`)
}

var errNotMap = errors.New(`expected a MsgPack map with an "op" field (a JSON object over HTTP)`)
