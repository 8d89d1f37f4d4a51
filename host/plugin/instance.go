package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin/meter"
)

// Instance is one live instance of a module. It is not safe for concurrent
// use. After a trap it re-creates itself from the compiled module on the next
// call.
type Instance struct {
	r     *Runtime
	m     *Module
	mod   api.Module // nil until started and after a trap
	alloc api.Function
	apply api.Function
	query api.Function
	mig   api.Function
	info  api.Function
	valid api.Function
	call  *call
	vctx  context.Context // carries call; the context of a trusted module's calls
	input bytes.Buffer
	// The guest's reusable input buffer (raftkv_input_buffer, ABI v1.2):
	// inputs of at most inCap bytes are written at inPtr without a call to
	// raftkv_alloc. inCap is 0 when the module offers none.
	inPtr, inCap uint32
	enc          *msgpack.Encoder
	stack        [2]uint64
	closed       bool
}

// Instantiate creates an instance of m and runs its initialiser.
func (r *Runtime) Instantiate(ctx context.Context, m *Module) (*Instance, error) {
	in := &Instance{r: r, m: m, call: newCall(m, r)}
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
	c := in.call
	c.reset()
	c.begin(in.m.Limits.LoadFuel)
	// Determinism: the clocks and the random source are functions of the
	// call's current entry (see call.now and call.random), the same on every
	// node and for every instance; stdout and stderr go to the node log.
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithStdout(c.out).WithStderr(c.out).
		WithWalltime(c.walltime, 1).WithNanotime(c.now, 1).
		WithNanosleep(c.sleep).WithRandSource(c)
	// The module's start section runs here, before any export: it gets the
	// wall-clock limit of a load call, as _initialize does (a module trusted
	// by its Limits has no fuel to stop a loop in it).
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if !in.m.trusted {
		c.timeout = in.r.CallLimit(in.m, in.m.Limits.LoadFuel)
		sctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	mod, err := in.m.rt.InstantiateModule(sctx, in.m.compiled, cfg)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("plugin: instantiate: %w", ctx.Err())
		}
		// The start function trapped, ran out of fuel or reached the
		// time limit.
		return fmt.Errorf("plugin: instantiate: %w", c.classify(err, ctx))
	}
	in.mod = mod
	in.alloc = mod.ExportedFunction(abi.ExportAlloc)
	in.apply = mod.ExportedFunction(abi.ExportApply)
	in.query = mod.ExportedFunction(abi.ExportQuery)
	in.mig = mod.ExportedFunction(abi.ExportMigrate)
	in.info = mod.ExportedFunction(abi.ExportInfo)
	in.valid = mod.ExportedFunction(abi.ExportValidate)
	if in.m.metered {
		c.fuel, _ = mod.ExportedGlobal(meter.FuelExport).(api.MutableGlobal)
	}
	if in.m.stacked {
		c.stack, _ = mod.ExportedGlobal(meter.StackExport).(api.MutableGlobal)
	}
	if in.m.metered && c.fuel == nil || in.m.stacked && c.stack == nil {
		mod.Close(ctx)
		in.mod = nil
		return fmt.Errorf("plugin: instantiate: the metering globals are missing")
	}
	if f := mod.ExportedFunction(abi.ExportInitialize); f != nil {
		c.startCall(in.m.Limits.LoadFuel)
		cctx, cancel := in.opContext(ctx, in.m.Limits.LoadFuel)
		err := in.invoke(ctx, cctx, f, 0, 0)
		cancel()
		if err != nil {
			return fmt.Errorf("plugin: _initialize: %w", err)
		}
	}
	return in.inputBuffer(ctx)
}

// inputBuffer asks the module for its reusable input buffer
// (raftkv_input_buffer, ABI.md section 1), if it exports one, and checks
// that the buffer lies inside the guest memory: the host writes there
// without asking again.
func (in *Instance) inputBuffer(ctx context.Context) error {
	in.inPtr, in.inCap = 0, 0
	f := in.mod.ExportedFunction(abi.ExportInputBuffer)
	if f == nil {
		return nil
	}
	c := in.call
	c.startCall(in.m.Limits.LoadFuel)
	cctx, cancel := in.opContext(ctx, in.m.Limits.LoadFuel)
	defer cancel()
	if err := in.invoke(ctx, cctx, f, 0, 0); err != nil {
		return fmt.Errorf("plugin: %s: %w", abi.ExportInputBuffer, err)
	}
	ptr, capacity := uint32(in.stack[0]), uint32(in.stack[0]>>32)
	if size := in.mod.Memory().Size(); capacity > 0 && uint64(ptr)+uint64(capacity) > uint64(size) {
		in.kill(ctx)
		return fmt.Errorf("plugin: %s: %w", abi.ExportInputBuffer, &trapError{abi.CodeTrap,
			fmt.Sprintf("it returned the buffer [%#x, +%d), which is not inside the guest memory of %d bytes", ptr, capacity, size)})
	}
	in.inPtr, in.inCap = ptr, capacity
	return nil
}

// InputBuffer returns the input buffer the live instance offered
// (raftkv_input_buffer, ABI.md section 1): the host writes every input of at
// most capacity bytes at ptr. capacity is 0 if it offered none, and before
// the instance starts again after a trap.
func (in *Instance) InputBuffer() (ptr, capacity uint32) { return in.inPtr, in.inCap }

// kill discards the live module after a trap or timeout.
func (in *Instance) kill(ctx context.Context) {
	if in.mod != nil {
		in.mod.Close(ctx)
		in.mod = nil
	}
	in.call.fuel, in.call.stack = nil, nil
	in.inPtr, in.inCap = 0, 0
}

// Close releases the instance. It is idempotent.
func (in *Instance) Close(ctx context.Context) error {
	in.kill(ctx)
	in.call.out.flush()
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

// trapError is a deterministic guest failure; it becomes the result of the
// entry or call: abi.CodeTrap, or abi.CodeOutOfFuel.
type trapError struct {
	code abi.Code
	msg  string
}

func (e *trapError) Error() string {
	if e.code == abi.CodeOutOfFuel {
		return "plugin " + e.msg
	}
	return "plugin trapped: " + e.msg
}

func (e *trapError) result() abi.Result { return abi.Result{Code: e.code, Data: []byte(e.msg)} }

// opContext returns the context of one operation's guest calls (an apply
// run, a query, a migration, the initialiser) whose fuel is fuel per entry
// or call: it carries the instance's call state and, for modules with
// termination checks, the wall-clock limit, which call.begin re-arms at
// every entry of a batch (the limit is per entry, as fuel is). A trusted
// module runs without checks, so a deadline could not stop it: its calls
// get a context made once, with no timer to arm per call (that timer was
// most of a KV query's cost).
func (in *Instance) opContext(ctx context.Context, fuel uint64) (context.Context, context.CancelFunc) {
	if in.m.trusted {
		return in.vctx, func() {}
	}
	cctx, cancel := context.WithCancel(context.WithValue(ctx, callKey{}, in.call))
	c := in.call
	timeout := in.r.CallLimit(in.m, fuel)
	c.timer = time.AfterFunc(timeout, cancel)
	c.timeout = timeout
	return cctx, func() {
		c.timer.Stop()
		c.timer = nil
		cancel()
	}
}

// invoke calls fn with up to two i32 arguments in cctx (from opContext(ctx)).
// The error is a *trapError, or wraps ErrTimeLimit or ctx's error.
func (in *Instance) invoke(ctx, cctx context.Context, fn api.Function, a, b uint32) error {
	in.stack[0], in.stack[1] = uint64(a), uint64(b)
	err := fn.CallWithStack(cctx, in.stack[:])
	c := in.call
	if err == nil && (c.fuel == nil || int64(c.fuel.Get()) >= 0) {
		return nil
	}
	if err == nil {
		// The last code the call ran took its fuel below zero: metered code
		// checks at loop starts and function entries only.
		err = c.outOfFuel()
	} else {
		err = c.classify(err, ctx)
	}
	in.kill(ctx)
	return err
}

// classify turns the error of a guest call into a *trapError, or an error
// wrapping ErrTimeLimit or ctx's error (ctx nil: no deadline applied). It
// reads the metering globals, so it runs before the module is closed.
func (c *call) classify(err error, ctx context.Context) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			if ctx != nil && ctx.Err() != nil {
				return fmt.Errorf("plugin: call abandoned: %w", ctx.Err())
			}
			return fmt.Errorf("%w (%v for one entry or call)", ErrTimeLimit, c.timeout)
		}
	}
	// Fuel first: a host function that ran out of fuel traps too.
	if c.fuel != nil && int64(c.fuel.Get()) < 0 {
		return c.outOfFuel()
	}
	if c.stack != nil && int64(c.stack.Get()) < 0 {
		return &trapError{abi.CodeTrap, fmt.Sprintf("call stack exhausted: calls nested deeper than %d slots (ABI.md, section 5)", StackSlots)}
	}
	if exit != nil {
		msg := fmt.Sprintf("plugin exited with code %d", exit.ExitCode())
		if line := c.out.firstLine(); line != "" {
			msg += ": " + line
		}
		return &trapError{abi.CodeTrap, msg}
	}
	var t *trap
	if errors.As(err, &t) {
		return &trapError{abi.CodeTrap, t.msg}
	}
	// A wasm trap. Language runtimes print why (Go: "panic: ...") before
	// executing unreachable; that line, printed during this entry, is the
	// useful message.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if line := c.out.firstLine(); line != "" {
		msg += ": " + line
	}
	return &trapError{abi.CodeTrap, msg}
}

// outOfFuel is the error of an entry or call that used up its fuel.
func (c *call) outOfFuel() *trapError {
	c.m.counters.OutOfFuel.Add(1)
	return &trapError{abi.CodeOutOfFuel, fmt.Sprintf("out of fuel: used the budget of %d", c.budget)}
}

// send copies data into the guest: into its input buffer if it fits
// (raftkv_input_buffer; no guest call), else into a buffer from
// raftkv_alloc, which runs with the fuel of the operation (budget).
func (in *Instance) send(ctx, cctx context.Context, data []byte, budget uint64) (uint32, error) {
	if in.inCap > 0 && uint64(len(data)) <= uint64(in.inCap) {
		// Checked against the memory when the instance started (and a
		// memory never shrinks), so this write does not fail.
		if !in.mod.Memory().Write(in.inPtr, data) {
			in.kill(ctx)
			return 0, &trapError{abi.CodeTrap, fmt.Sprintf("%s buffer %#x is outside guest memory", abi.ExportInputBuffer, in.inPtr)}
		}
		return in.inPtr, nil
	}
	in.call.reset()
	in.call.startCall(budget)
	in.stack[0] = uint64(len(data))
	if err := in.invoke(ctx, cctx, in.alloc, uint32(len(data)), 0); err != nil {
		return 0, err
	}
	ptr := uint32(in.stack[0])
	if !in.mod.Memory().Write(ptr, data) {
		in.kill(ctx)
		return 0, &trapError{abi.CodeTrap, fmt.Sprintf("raftkv_alloc(%d) returned %d, outside guest memory", len(data), ptr)}
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
// entry. A trap, or running out of fuel, becomes the entry's result; the rest
// of the batch runs on a fresh instance. The error is non-nil only when
// applying must stop: it wraps ErrTimeLimit, a context error, or an
// instantiation failure; the results returned with it cover the entries
// applied before the failure.
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
	fuel := in.m.Limits.ApplyFuel
	for len(entries) > 0 {
		if err := in.ensure(ctx); err != nil {
			return results, err
		}
		in.encodeBatch(entries)
		base := len(results)
		cctx, cancel := in.opContext(ctx, fuel)
		ptr, err := in.send(ctx, cctx, in.input.Bytes(), fuel)
		if err == nil {
			c.mode, c.store, c.read, c.entries, c.next, c.results = modeApply, st, st, entries, 0, results
			c.startCall(fuel)
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

// single runs one query, migration or info call with fuel and returns its
// result.
func (in *Instance) single(ctx context.Context, md mode, fn func() api.Function, st Store, read ReadStore, input []byte, meta abi.Entry, fuel uint64) (abi.Result, error) {
	if err := in.ensure(ctx); err != nil {
		return abi.Result{}, err
	}
	c := in.call
	cctx, cancel := in.opContext(ctx, fuel)
	defer cancel()
	var ptr uint32
	var err error
	if md != modeInfo {
		ptr, err = in.send(ctx, cctx, input, fuel)
	}
	if err == nil {
		c.arena = nil
		c.mode, c.store, c.read, c.meta = md, st, read, meta
		c.startCall(fuel)
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

// Query runs a read-only query against st with Limits.QueryFuel. A trap is
// returned as a result with abi.CodeTrap (abi.CodeOutOfFuel for a query that
// used up its fuel); the error wraps ErrTimeLimit or a context error.
func (in *Instance) Query(ctx context.Context, st ReadStore, q []byte) (abi.Result, error) {
	return in.single(ctx, modeQuery, func() api.Function { return in.query }, nil, st, q, abi.Entry{}, in.m.Limits.QueryFuel)
}

// Migrate runs the module's raftkv_migrate, if it exports one, as part of the
// deploy entry meta, with Limits.LoadFuel. Its writes to st are kept only if
// it succeeds.
func (in *Instance) Migrate(ctx context.Context, st Store, mig abi.Migration, meta abi.Entry) (abi.Result, error) {
	if !in.m.HasMigrate {
		return abi.Result{Code: abi.CodeOK}, nil
	}
	input, err := msgpack.Marshal(&mig)
	if err != nil {
		return abi.Result{}, err
	}
	st.Begin()
	res, err := in.single(ctx, modeMigrate, func() api.Function { return in.mig }, st, st, input, meta, in.m.Limits.LoadFuel)
	if err == nil && res.OK() {
		st.Commit()
	} else {
		st.Rollback()
	}
	return res, err
}

// Validate runs the module's raftkv_validate on a command, if it has one
// (Module.HasValidate), with Limits.QueryFuel: an OK result, or the refusal.
// It sees no state (a state call traps) and no entry. A trap is a result, as
// for Query.
func (in *Instance) Validate(ctx context.Context, cmd []byte) (abi.Result, error) {
	if !in.m.HasValidate {
		return abi.Result{Code: abi.CodeOK}, nil
	}
	return in.single(ctx, modeValidate, func() api.Function { return in.valid }, nil, nil, cmd, abi.Entry{}, in.m.Limits.QueryFuel)
}

// Info calls raftkv_info with Limits.LoadFuel.
func (in *Instance) Info(ctx context.Context) (abi.Info, error) {
	var info abi.Info
	if in.m.compiled.ExportedFunctions()[abi.ExportInfo] == nil {
		return info, nil
	}
	res, err := in.single(ctx, modeInfo, func() api.Function { return in.info }, nil, nil, nil, abi.Entry{}, in.m.Limits.LoadFuel)
	if err != nil {
		return info, err
	}
	if err := res.Err(); err != nil {
		return info, err
	}
	if err := abi.Unmarshal(res.Data, &info); err != nil {
		return info, fmt.Errorf("raftkv_info payload is not a MsgPack Info map: %w", err)
	}
	return info, nil
}
