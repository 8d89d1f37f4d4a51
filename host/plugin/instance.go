package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

// Instance is one live instance of a module. It is not safe for concurrent
// use. After a trap it re-creates itself from the compiled module on the next
// call.
type Instance struct {
	r      *Runtime
	m      *Module
	mod    api.Module // nil until started and after a trap
	alloc  api.Function
	apply  api.Function
	query  api.Function
	mig    api.Function
	info   api.Function
	call   *call
	vctx   context.Context // carries call; the context of a trusted module's calls
	stderr *tailBuffer
	input  bytes.Buffer
	enc    *msgpack.Encoder
	stack  [2]uint64
	closed bool
}

// Instantiate creates an instance of m and runs its initialiser.
func (r *Runtime) Instantiate(ctx context.Context, m *Module) (*Instance, error) {
	in := &Instance{r: r, m: m, call: newCall(r.log.With("plugin", m.Hash[:12])), stderr: &tailBuffer{}}
	in.vctx = context.WithValue(context.Background(), callKey{}, in.call)
	in.enc = msgpack.NewEncoder(&in.input)
	if err := in.start(ctx); err != nil {
		return nil, err
	}
	return in, nil
}

// Module returns the module this is an instance of.
func (in *Instance) Module() *Module { return in.m }

func (in *Instance) start(ctx context.Context) error {
	if in.closed {
		return ErrClosed
	}
	in.stderr.Reset()
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithStdout(in.stderr).WithStderr(in.stderr)
	mod, err := in.m.rt.InstantiateModule(ctx, in.m.compiled, cfg)
	if err != nil {
		return fmt.Errorf("plugin: instantiate: %w", err)
	}
	in.mod = mod
	in.alloc = mod.ExportedFunction(abi.ExportAlloc)
	in.apply = mod.ExportedFunction(abi.ExportApply)
	in.query = mod.ExportedFunction(abi.ExportQuery)
	in.mig = mod.ExportedFunction(abi.ExportMigrate)
	in.info = mod.ExportedFunction(abi.ExportInfo)
	if f := mod.ExportedFunction(abi.ExportInitialize); f != nil {
		in.call.reset()
		cctx, cancel := in.opContext(ctx)
		defer cancel()
		if err := in.invoke(ctx, cctx, f, 0, 0); err != nil {
			return fmt.Errorf("plugin: _initialize: %w", err)
		}
	}
	return nil
}

// kill discards the live module after a trap or timeout.
func (in *Instance) kill(ctx context.Context) {
	if in.mod != nil {
		in.mod.Close(ctx)
		in.mod = nil
	}
}

// Close releases the instance. It is idempotent.
func (in *Instance) Close(ctx context.Context) error {
	in.kill(ctx)
	in.closed = true
	return nil
}

// MemoryPages returns the size of the live instance's memory in 64 KiB pages.
func (in *Instance) MemoryPages() uint32 {
	if in.mod == nil {
		return 0
	}
	return in.mod.Memory().Size() / 65536
}

// trapError is a deterministic guest failure; it becomes an abi.CodeTrap result.
type trapError struct{ msg string }

func (e *trapError) Error() string { return "plugin trapped: " + e.msg }

func (e *trapError) result() abi.Result { return abi.Result{Code: abi.CodeTrap, Data: []byte(e.msg)} }

// opContext returns the context of one operation's guest calls (an apply
// run, a query, a migration, the initialiser): it carries the instance's call
// state and, for modules with termination checks, the wall-clock limit. A
// trusted module runs without checks, so a deadline could not stop it: its
// calls get a context made once, with no timer to arm per call (that timer
// was most of a KV query's cost).
func (in *Instance) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if in.m.trusted {
		return in.vctx, func() {}
	}
	return context.WithTimeout(context.WithValue(ctx, callKey{}, in.call), in.r.cfg.CallTimeout)
}

// invoke calls fn with up to two i32 arguments in cctx (from opContext(ctx)).
// The error is a *trapError, or wraps ErrTimeLimit or ctx's error.
func (in *Instance) invoke(ctx, cctx context.Context, fn api.Function, a, b uint32) error {
	in.stack[0], in.stack[1] = uint64(a), uint64(b)
	err := fn.CallWithStack(cctx, in.stack[:])
	if err == nil {
		return nil
	}
	in.kill(ctx)
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			if ctx.Err() != nil {
				return fmt.Errorf("plugin: call abandoned: %w", ctx.Err())
			}
			return fmt.Errorf("%w (%v)", ErrTimeLimit, in.r.cfg.CallTimeout)
		}
		msg := fmt.Sprintf("plugin exited with code %d", exit.ExitCode())
		if line := in.stderr.FirstLine(); line != "" {
			msg += ": " + line
		}
		return &trapError{msg}
	}
	var t *trap
	if errors.As(err, &t) {
		return &trapError{t.msg}
	}
	// A wasm trap. Language runtimes print why (Go: "panic: ...") before
	// executing unreachable; that line is the useful message.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if line := in.stderr.FirstLine(); line != "" {
		msg += ": " + line
	}
	return &trapError{msg}
}

// send copies data into a guest buffer from raftkv_alloc.
func (in *Instance) send(ctx, cctx context.Context, data []byte) (uint32, error) {
	in.call.reset()
	in.stack[0] = uint64(len(data))
	if err := in.invoke(ctx, cctx, in.alloc, uint32(len(data)), 0); err != nil {
		return 0, err
	}
	ptr := uint32(in.stack[0])
	if !in.mod.Memory().Write(ptr, data) {
		in.kill(ctx)
		return 0, &trapError{fmt.Sprintf("raftkv_alloc(%d) returned %d, outside guest memory", len(data), ptr)}
	}
	return ptr, nil
}

func (in *Instance) ensure(ctx context.Context) error {
	if in.mod != nil {
		return nil
	}
	return in.start(ctx)
}

// Apply applies a batch of committed entries to st and returns one result per
// entry. A trap becomes the trapping entry's result; the rest of the batch runs
// on a fresh instance. The error is non-nil only when applying must stop: it
// wraps ErrTimeLimit, a context error, or an instantiation failure; the
// results returned with it cover the entries applied before the failure.
func (in *Instance) Apply(ctx context.Context, st Store, entries []abi.Entry) ([]abi.Result, error) {
	results := make([]abi.Result, 0, len(entries))
	in.call.arena = make([]byte, 0, 16*len(entries))
	for len(entries) > 0 {
		n := batchPrefix(entries)
		var err error
		if results, err = in.applyBatch(ctx, st, entries[:n], results); err != nil {
			return results, err
		}
		entries = entries[n:]
	}
	return results, nil
}

// batchPrefix returns how many leading entries fit in one guest call
// (abi.MaxBatchBytes, by a bound on their encoding), at least one.
func batchPrefix(entries []abi.Entry) int {
	size := 5 // array header
	for i, e := range entries {
		size += 1 + 3*9 + 5 + len(e.Data) // [index, term, time, bin data] at their widest
		if size > abi.MaxBatchBytes && i > 0 {
			return i
		}
	}
	return len(entries)
}

// applyBatch applies entries that fit in one guest call, appending to results.
func (in *Instance) applyBatch(ctx context.Context, st Store, entries []abi.Entry, results []abi.Result) ([]abi.Result, error) {
	c := in.call
	for len(entries) > 0 {
		if err := in.ensure(ctx); err != nil {
			return results, err
		}
		in.encodeBatch(entries)
		base := len(results)
		cctx, cancel := in.opContext(ctx)
		ptr, err := in.send(ctx, cctx, in.input.Bytes())
		if err == nil {
			c.mode, c.store, c.read, c.entries, c.next, c.results = modeApply, st, st, entries, 0, results
			st.Begin()
			err = in.invoke(ctx, cctx, in.apply, ptr, uint32(in.input.Len()))
			results = c.results
			if c.next < len(entries) {
				st.Rollback() // the open entry: unreported, trapped or timed out
			}
		}
		cancel()
		var te *trapError
		switch {
		case err == nil:
			for len(results)-base < len(entries) {
				results = append(results, abi.Result{Code: abi.CodeNoResult, Data: []byte("plugin returned without reporting a result")})
			}
			entries = nil
		case errors.As(err, &te) && c.mode != modeApply:
			// Trapped in raftkv_alloc before any entry ran: charge the first
			// entry so that the batch always makes progress.
			results = append(results, te.result())
			entries = entries[1:]
		case errors.As(err, &te) && c.next < len(entries):
			results = append(results, te.result())
			entries = entries[c.next+1:]
		case errors.As(err, &te):
			entries = nil // trapped after reporting every result
		default:
			c.reset()
			return results, err
		}
		c.reset()
	}
	return results, nil
}

func (in *Instance) encodeBatch(entries []abi.Entry) {
	in.input.Reset()
	_ = in.enc.EncodeArrayLen(len(entries)) // a bytes.Buffer never fails
	for i := range entries {
		e := &entries[i]
		_ = in.enc.EncodeArrayLen(4)
		_ = in.enc.EncodeUint(e.Index)
		_ = in.enc.EncodeUint(e.Term)
		_ = in.enc.EncodeInt(e.Time)
		_ = in.enc.EncodeBytes(e.Data)
	}
}

// single runs one query, migration or info call and returns its result.
func (in *Instance) single(ctx context.Context, md mode, fn func() api.Function, st Store, read ReadStore, input []byte, meta abi.Entry) (abi.Result, error) {
	if err := in.ensure(ctx); err != nil {
		return abi.Result{}, err
	}
	c := in.call
	cctx, cancel := in.opContext(ctx)
	defer cancel()
	var ptr uint32
	var err error
	if md != modeInfo {
		ptr, err = in.send(ctx, cctx, input)
	}
	if err == nil {
		c.arena = nil
		c.mode, c.store, c.read, c.meta = md, st, read, meta
		err = in.invoke(ctx, cctx, fn(), ptr, uint32(len(input)))
	}
	res := c.single
	c.reset()
	var te *trapError
	switch {
	case err == nil && res == nil:
		return abi.Result{Code: abi.CodeNoResult, Data: []byte("plugin returned without reporting a result")}, nil
	case err == nil:
		return *res, nil
	case errors.As(err, &te):
		return te.result(), nil
	}
	return abi.Result{}, err
}

// Query runs a read-only query against st. A trap is returned as a result
// with abi.CodeTrap; the error wraps ErrTimeLimit or a context error.
func (in *Instance) Query(ctx context.Context, st ReadStore, q []byte) (abi.Result, error) {
	return in.single(ctx, modeQuery, func() api.Function { return in.query }, nil, st, q, abi.Entry{})
}

// Migrate runs the module's raftkv_migrate, if it exports one, as part of the
// deploy entry meta. Its writes to st are kept only if it succeeds.
func (in *Instance) Migrate(ctx context.Context, st Store, mig abi.Migration, meta abi.Entry) (abi.Result, error) {
	if !in.m.HasMigrate {
		return abi.Result{Code: abi.CodeOK}, nil
	}
	input, err := msgpack.Marshal(&mig)
	if err != nil {
		return abi.Result{}, err
	}
	st.Begin()
	res, err := in.single(ctx, modeMigrate, func() api.Function { return in.mig }, st, st, input, meta)
	if err == nil && res.OK() {
		st.Commit()
	} else {
		st.Rollback()
	}
	return res, err
}

// Info calls raftkv_info.
func (in *Instance) Info(ctx context.Context) (abi.Info, error) {
	var info abi.Info
	if in.m.compiled.ExportedFunctions()[abi.ExportInfo] == nil {
		return info, nil
	}
	res, err := in.single(ctx, modeInfo, func() api.Function { return in.info }, nil, nil, nil, abi.Entry{})
	if err != nil {
		return info, err
	}
	if err := res.Err(); err != nil {
		return info, err
	}
	if err := msgpack.Unmarshal(res.Data, &info); err != nil {
		return info, fmt.Errorf("raftkv_info payload is not a MsgPack Info map: %w", err)
	}
	return info, nil
}

// tailBuffer keeps the first line and a bounded amount of what the guest
// writes to stdout/stderr (Go writes panic messages there before exiting).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 4 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := tailMax - len(t.buf); room > 0 {
		t.buf = append(t.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Reset() {
	t.mu.Lock()
	t.buf = t.buf[:0]
	t.mu.Unlock()
}

// FirstLine returns the first non-empty line written since the last Reset.
func (t *tailBuffer) FirstLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for line := range strings.SplitSeq(string(t.buf), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}
