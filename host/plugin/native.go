package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// Native runs a plugin's Go code directly on the host, with the semantics of
// an Instance: per-entry atomicity, a panic becomes a trap result, writes in
// a query are refused, a migration's writes are kept only if it succeeds. It
// exists to measure what WebAssembly costs (the same kvstore code runs both
// ways, up to a whole node: see host.Config.NativePlugins) and for plugin
// authors' host-side tests.
//
// It is not a sandbox: the code shares the host's memory, has no memory cap
// and no call time limit (like a trusted module, see Config.Trusted), so run
// only code shipped with the host this way. A trap's message says "panic: …"
// where a wasm instance reports the wasm trap and the guest's panic line: the
// code (abi.CodeTrap) and the state are the same, the text is not.
//
// Like an Instance it is not safe for concurrent use; NativePool serves
// concurrent queries.
type Native struct {
	p      sdk.Plugin
	app    sdk.Appender // p, if it implements the allocation-free form
	st     nativeState
	buf    []byte
	closed bool
}

// NewNative wraps p.
func NewNative(p sdk.Plugin) *Native {
	n := &Native{p: p}
	n.app, _ = p.(sdk.Appender)
	return n
}

// Apply applies entries in order; see Instance.Apply. Its error is only
// ErrClosed: a panic is the entry's trap result.
func (n *Native) Apply(_ context.Context, st Store, entries []abi.Entry) ([]abi.Result, error) {
	if n.closed {
		return nil, ErrClosed
	}
	results := make([]abi.Result, len(entries))
	arena := make([]byte, 0, 16*len(entries))
	for i := range entries {
		e := &entries[i]
		n.st = nativeState{w: st, r: st, entry: sdk.Entry{Index: e.Index, Term: e.Term, Time: e.Time}}
		st.Begin()
		out, err := n.call(func() ([]byte, error) {
			se := sdk.Entry{Index: e.Index, Term: e.Term, Time: e.Time, Data: e.Data}
			if n.app != nil {
				return n.app.AppendApply(n.buf[:0], &n.st, se)
			}
			return n.p.Apply(&n.st, se)
		})
		r := resultOf(out, err)
		if r.OK() {
			st.Commit()
		} else {
			st.Rollback()
		}
		start := len(arena)
		arena = append(arena, r.Data...)
		results[i] = abi.Result{Code: r.Code, Data: arena[start:len(arena):len(arena)]}
		if n.app != nil && out != nil {
			n.buf = out[:0]
		}
	}
	n.st = nativeState{}
	return results, nil
}

// Query answers a read-only query; see Instance.Query. The result's Data is
// its own copy.
func (n *Native) Query(_ context.Context, st ReadStore, q []byte) (abi.Result, error) {
	if n.closed {
		return abi.Result{}, ErrClosed
	}
	n.st = nativeState{r: st}
	out, err := n.call(func() ([]byte, error) {
		if n.app != nil {
			return n.app.AppendQuery(n.buf[:0], &n.st, q)
		}
		return n.p.Query(&n.st, q)
	})
	r := resultOf(out, err)
	r.Data = append([]byte(nil), r.Data...)
	if n.app != nil && out != nil {
		n.buf = out[:0]
	}
	n.st = nativeState{} // do not keep the view alive
	return r, nil
}

// Migrate runs the plugin's sdk.Migrator, if it has one, as part of the
// deploy entry meta; see Instance.Migrate. Its writes to st are kept only if
// it succeeds. Without a Migrator the upgrade is accepted, as the SDK's
// raftkv_migrate accepts it.
func (n *Native) Migrate(_ context.Context, st Store, mig abi.Migration, meta abi.Entry) (abi.Result, error) {
	if n.closed {
		return abi.Result{}, ErrClosed
	}
	mg, ok := n.p.(sdk.Migrator)
	if !ok {
		return abi.Result{Code: abi.CodeOK}, nil
	}
	n.st = nativeState{w: st, r: st, entry: sdk.Entry{Index: meta.Index, Term: meta.Term, Time: meta.Time}}
	st.Begin()
	_, err := n.call(func() ([]byte, error) { return nil, mg.Migrate(&n.st, mig) })
	r := resultOf(nil, err)
	if r.OK() {
		st.Commit()
	} else {
		st.Rollback()
	}
	n.st = nativeState{}
	r.Data = append([]byte(nil), r.Data...)
	return r, nil
}

// Close makes every later call fail with ErrClosed. It is idempotent.
func (n *Native) Close(context.Context) error {
	n.closed = true
	return nil
}

// call runs f, turning a panic into a trap as the wasm runtime would.
func (n *Native) call(f func() ([]byte, error)) (out []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = nil, &trapError{fmt.Sprintf("panic: %v", v)}
		}
	}()
	return f()
}

func resultOf(out []byte, err error) abi.Result {
	if err == nil {
		return abi.Result{Data: out}
	}
	return errorResult(err)
}

// errorResult maps a plugin error to its result, as the SDK does in wasm. It
// is apart from resultOf so that the success path does not allocate the
// errors.As targets.
func errorResult(err error) abi.Result {
	var te *trapError
	var ae *abi.Error
	switch {
	case errors.As(err, &te):
		return te.result()
	case errors.As(err, &ae):
		return abi.Result{Code: ae.Code, Data: []byte(ae.Message)}
	}
	return abi.Result{Code: abi.CodeInternal, Data: []byte(err.Error())}
}

// nativeState is sdk.State over the host store.
type nativeState struct {
	w     Store // nil during a query
	r     ReadStore
	entry sdk.Entry
}

func (s *nativeState) CurrentEntry() sdk.Entry { return s.entry }

func (s *nativeState) Get(key []byte) ([]byte, uint64, bool) {
	if len(key) == 0 || len(key) > abi.MaxKeySize {
		return nil, 0, false
	}
	return s.r.Get(key)
}

func (s *nativeState) check(key []byte, vlen int) error {
	switch {
	case s.w == nil:
		return &abi.Error{Code: abi.CodeReadOnly, Message: "state is read-only during a query"}
	case len(key) == 0:
		return &abi.Error{Code: abi.CodeBadRequest, Message: "empty key"}
	case len(key) > abi.MaxKeySize || vlen > abi.MaxValueSize:
		return &abi.Error{Code: abi.CodeTooLarge, Message: "key or value too large"}
	}
	return nil
}

func (s *nativeState) Set(key, value []byte) error {
	if err := s.check(key, len(value)); err != nil {
		return err
	}
	s.w.Set(key, value, s.entry.Index)
	return nil
}

func (s *nativeState) Delete(key []byte) (bool, error) {
	if err := s.check(key, 0); err != nil {
		return false, err
	}
	return s.w.Delete(key), nil
}

func (s *nativeState) Scan(start, end []byte, limit int) ([]abi.Record, error) {
	if limit < 1 || limit > abi.MaxScanLimit {
		return nil, &abi.Error{Code: abi.CodeBadRequest, Message: fmt.Sprintf("scan limit %d out of range [1, %d]", limit, abi.MaxScanLimit)}
	}
	var out []abi.Record
	s.r.Scan(start, end, limit, func(k, v []byte, ver uint64) bool {
		out = append(out, abi.Record{Key: k, Value: v, Version: ver})
		return true
	})
	return out, nil
}
