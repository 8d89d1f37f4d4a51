// Package sdknative adapts a Go SDK plugin (plugins/sdk) to the host's native
// engine (host/plugin.Code), so that the same Go code a module was built from
// can run on the host instead of in WebAssembly: to measure what WebAssembly
// costs (raftkv serve --native-kv, the wasm/native benchmarks) and to test a
// plugin's logic differentially. The host itself does not import the guest
// SDK (a layering rule, host/transport/imports_test.go); this package is the
// one bridge, and internal so that it is no part of either side's API.
package sdknative

import (
	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// Code returns p as the host's native engine runs it: AppendApply and
// AppendQuery when p is an sdk.Appender, ValidateCommand and Migrate when it
// is an sdk.Validator or sdk.Migrator (without them every command and upgrade
// is accepted, as the SDK's wasm exports accept them). p's methods run
// concurrently (a plugin.NativePool), so p must be safe for concurrent use,
// as a plugin without fields is.
func Code(p sdk.Plugin) plugin.Code {
	c := code{p: p}
	c.app, _ = p.(sdk.Appender)
	c.val, _ = p.(sdk.Validator)
	c.mig, _ = p.(sdk.Migrator)
	return c
}

type code struct {
	p   sdk.Plugin
	app sdk.Appender
	val sdk.Validator
	mig sdk.Migrator
}

// state presents the host's NativeState as an sdk.State. It is one pointer,
// so converting it to the interface does not allocate.
type state struct{ *plugin.NativeState }

// CurrentEntry is what sdk.EntryOf reports.
func (s state) CurrentEntry() sdk.Entry {
	e := s.Entry()
	return sdk.Entry{Index: e.Index, Term: e.Term, Time: e.Time}
}

func (c code) Apply(dst []byte, st *plugin.NativeState, e abi.Entry) ([]byte, error) {
	se := sdk.Entry{Index: e.Index, Term: e.Term, Time: e.Time, Data: e.Data}
	if c.app != nil {
		return c.app.AppendApply(dst, state{st}, se)
	}
	return c.p.Apply(state{st}, se)
}

func (c code) Query(dst []byte, st *plugin.NativeState, q []byte) ([]byte, error) {
	if c.app != nil {
		return c.app.AppendQuery(dst, state{st}, q)
	}
	return c.p.Query(state{st}, q)
}

func (c code) Validate(cmd []byte) error {
	if c.val == nil {
		return nil
	}
	return c.val.ValidateCommand(cmd)
}

func (c code) Migrate(st *plugin.NativeState, m abi.Migration) error {
	if c.mig == nil {
		return nil
	}
	return c.mig.Migrate(state{st}, m)
}
