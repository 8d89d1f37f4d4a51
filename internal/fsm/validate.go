package fsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
)

// Validate runs the named plugin's raftkv_validate (ABI.md) on a command
// before the leader proposes it, so a command the plugin refuses from its
// bytes alone never reaches the log. It answers OK when there is nothing to
// check here: a plugin without the export, or one that is unknown,
// quarantined or being replaced (applying the command decides then, as
// before). The check is pure, so running it on the leader only is safe:
// every node still applies whatever is committed.
func (f *FSM) Validate(ctx context.Context, name string, cmd []byte) (abi.Result, error) {
	ok := abi.Result{Code: abi.CodeOK}
	p := f.Plugin(name)
	if p == nil || p.mod == nil || !p.mod.HasValidate || p.quarantined {
		return ok, nil
	}
	res, err := p.pool.Validate(ctx, cmd)
	switch {
	case errors.Is(err, plugin.ErrClosed):
		return ok, nil
	case errors.Is(err, plugin.ErrTimeLimit):
		return res, fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return res, err
}
