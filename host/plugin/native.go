package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/abi"
)

// Code is Go code that a Native runs in place of a module: a plugin's entry
// points in the host's own types, so that the host does not import the guest
// SDK. internal/sdknative adapts a Go SDK plugin (sdk.Plugin with its
// optional Appender, Validator and Migrator) to it.
type Code interface {
	// Apply applies e and appends its result to dst (a reusable buffer of
	// length 0; the result is consumed before the next call). An error is
	// the entry's result as the SDK maps it (an *abi.Error keeps its code).
	Apply(dst []byte, st *NativeState, e abi.Entry) ([]byte, error)
	// Query answers q as Apply does, with a read-only st.
	Query(dst []byte, st *NativeState, q []byte) ([]byte, error)
	// Validate checks a command before it is proposed; nil accepts it.
	Validate(cmd []byte) error
	// Migrate transforms the state an earlier version left; st's entry is
	// the deploy entry. nil accepts the upgrade.
	Migrate(st *NativeState, m abi.Migration) error
}

// Native runs a plugin's Go code directly on the host, with the semantics of
// an Instance: per-entry atomicity, a panic becomes a trap result, writes in
// a query are refused, a migration's writes are kept only if it succeeds. It
// exists to measure what WebAssembly costs (the same kvstore code runs both
// ways, up to a whole node: see internal/sdknative) and for plugin
// authors' host-side tests.
//
// It is not a sandbox: the code shares the host's memory, has no memory cap,
// no fuel and no call time limit (like a trusted module, see Config.Trusted),
// so run only code shipped with the host this way. SetLimits gives it the
// write quotas of its plugin's Limits. A trap's message says "panic: …"
// where a wasm instance reports the wasm trap and the guest's panic line: the
// code (abi.CodeTrap) and the state are the same, the text is not.
//
// Like an Instance it is not safe for concurrent use; NativePool serves
// concurrent queries.
type Native struct {
	p      Code
	lim    *Limits // SetLimits; nil: no quotas
	st     NativeState
	buf    []byte
	closed bool
}

// NewNative wraps p.
func NewNative(p Code) *Native { return &Native{p: p} }

// SetLimits enforces the write quotas of l (Limits.MaxWriteBytes,
// MaxNamespaceKeys, MaxNamespaceBytes) as an Instance does: a write over a
// quota fails with abi.CodeTooLarge and the entry's result is too_large. A
// Native is not metered: l's fuel and memory cap do not apply.
func (n *Native) SetLimits(l Limits) { n.lim = &l }

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
		n.st = NativeState{w: st, r: st, entry: abi.Entry{Index: e.Index, Term: e.Term, Time: e.Time}, q: quota{lim: n.lim}}
		st.Begin()
		out, err := n.call(func() ([]byte, error) { return n.p.Apply(n.buf[:0], &n.st, *e) })
		r := resultOf(out, err)
		if n.st.q.broken != "" {
			r = abi.Result{Code: abi.CodeTooLarge, Data: []byte(n.st.q.broken)}
		}
		if r.OK() {
			st.Commit()
		} else {
			st.Rollback()
		}
		start := len(arena)
		arena = append(arena, r.Data...)
		results[i] = abi.Result{Code: r.Code, Data: arena[start:len(arena):len(arena)]}
		if out != nil {
			n.buf = out[:0]
		}
	}
	n.st = NativeState{}
	return results, nil
}

// Query answers a read-only query; see Instance.Query. The result's Data is
// its own copy.
func (n *Native) Query(_ context.Context, st ReadStore, q []byte) (abi.Result, error) {
	if n.closed {
		return abi.Result{}, ErrClosed
	}
	n.st = NativeState{r: st}
	out, err := n.call(func() ([]byte, error) { return n.p.Query(n.buf[:0], &n.st, q) })
	r := resultOf(out, err)
	r.Data = append([]byte(nil), r.Data...)
	if out != nil {
		n.buf = out[:0]
	}
	n.st = NativeState{} // do not keep the view alive
	return r, nil
}

// Validate runs the code's Validate; see Instance.Validate.
func (n *Native) Validate(_ context.Context, cmd []byte) (abi.Result, error) {
	if n.closed {
		return abi.Result{}, ErrClosed
	}
	r := resultOf(n.call(func() ([]byte, error) { return nil, n.p.Validate(cmd) }))
	r.Data = append([]byte(nil), r.Data...)
	return r, nil
}

// Migrate runs the code's Migrate as part of the deploy entry meta; see
// Instance.Migrate. Its writes to st are kept only if it succeeds.
func (n *Native) Migrate(_ context.Context, st Store, mig abi.Migration, meta abi.Entry) (abi.Result, error) {
	if n.closed {
		return abi.Result{}, ErrClosed
	}
	n.st = NativeState{w: st, r: st, entry: abi.Entry{Index: meta.Index, Term: meta.Term, Time: meta.Time}, q: quota{lim: n.lim}}
	st.Begin()
	_, err := n.call(func() ([]byte, error) { return nil, n.p.Migrate(&n.st, mig) })
	r := resultOf(nil, err)
	if n.st.q.broken != "" {
		r = abi.Result{Code: abi.CodeTooLarge, Data: []byte(n.st.q.broken)}
	}
	if r.OK() {
		st.Commit()
	} else {
		st.Rollback()
	}
	n.st = NativeState{}
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
			out, err = nil, &trapError{abi.CodeTrap, fmt.Sprintf("panic: %v", v)}
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

// NativeState is the state a Native gives its Code: the host store with the
// checks and quotas of the host functions (the methods have the semantics of
// the SDK's State, which internal/sdknative presents it as).
type NativeState struct {
	w     Store // nil during a query
	r     ReadStore
	entry abi.Entry
	q     quota
}

// Entry is the entry being applied (without its Data), the deploy entry
// during Migrate, the zero Entry during a query.
func (s *NativeState) Entry() abi.Entry { return s.entry }

func (s *NativeState) Get(key []byte) ([]byte, uint64, bool) {
	if len(key) == 0 || len(key) > abi.MaxKeySize {
		return nil, 0, false
	}
	return s.r.Get(key)
}

func (s *NativeState) check(key []byte, vlen int) error {
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

func (s *NativeState) Set(key, value []byte) error {
	if err := s.check(key, len(value)); err != nil {
		return err
	}
	if !s.q.allowSet(s.w, key, value) {
		return &abi.Error{Code: abi.CodeTooLarge, Message: s.q.broken}
	}
	s.w.Set(key, value, s.entry.Index)
	return nil
}

func (s *NativeState) Delete(key []byte) (bool, error) {
	if err := s.check(key, 0); err != nil {
		return false, err
	}
	if !s.q.allowWrite(uint64(len(key))) {
		return false, &abi.Error{Code: abi.CodeTooLarge, Message: s.q.broken}
	}
	return s.w.Delete(key), nil
}

func (s *NativeState) Scan(start, end []byte, limit int) ([]abi.Record, error) {
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
