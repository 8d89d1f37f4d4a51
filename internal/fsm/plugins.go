package fsm

import (
	"fmt"
	"regexp"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
)

// DefaultPluginName is the plugin that always exists: the key-value store.
const DefaultPluginName = "kv"

// Limits on the active plugins, which every snapshot carries (the modules'
// bytes are in its header, read into memory whole). The leader refuses a
// deploy that would exceed them with ErrInvalid; the default plugin counts.
const (
	// MaxPlugins is the most plugins active at once.
	MaxPlugins = 32
	// MaxPluginBytes bounds the total size of the active modules' .wasm.
	MaxPluginBytes = 128 << 20
)

var pluginName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ValidPluginName reports whether name can name a plugin: a lowercase letter,
// then up to 62 lowercase letters, digits, '-' or '_'.
func ValidPluginName(name string) error {
	if !pluginName.MatchString(name) {
		return fmt.Errorf("%w: plugin name %q: want a lowercase letter followed by up to 62 of [a-z0-9_-]", ErrInvalid, name)
	}
	return nil
}

// DeploySpec is the payload of a deploy entry. Entries written before
// limits were replicated carry the module's bytes alone (they begin with
// the wasm magic "\0asm", a MsgPack map never does): those run with the
// default limits and no preconditions.
type DeploySpec struct {
	Wasm   []byte        `msgpack:"wasm"`
	Limits plugin.Limits `msgpack:"limits"`
	Create bool          `msgpack:"create,omitempty"`
	IfHash string        `msgpack:"if_hash,omitempty"`
	Force  bool          `msgpack:"force,omitempty"`
}

// SetLimitsSpec is the payload of a set-limits entry: the plugin's active
// module is loaded again with the new limits (no migration runs).
type SetLimitsSpec struct {
	Limits plugin.Limits `msgpack:"limits"`
	IfHash string        `msgpack:"if_hash,omitempty"`
}

// isWasm reports whether b begins as a WebAssembly binary does.
func isWasm(b []byte) bool { return len(b) > 0 && b[0] == 0 }

func decodeDeploySpec(payload []byte) (DeploySpec, error) {
	if isWasm(payload) {
		return DeploySpec{Wasm: payload, Limits: plugin.DefaultLimits(), Force: true}, nil
	}
	var s DeploySpec
	if err := abi.Unmarshal(payload, &s); err != nil {
		return DeploySpec{}, fmt.Errorf("%w: deploy entry: %w", ErrInvalid, err)
	}
	return s, nil
}

// Encode encodes the payload of a deploy entry.
func (s *DeploySpec) Encode() []byte {
	b, err := abi.Marshal(s)
	if err != nil { // plain data: cannot happen
		panic(fmt.Sprintf("raftkv: encoding a deploy entry: %v", err))
	}
	return b
}

// CheckPreconditions refuses a deploy of the module of hash newHash whose
// preconditions the plugin active now (old, nil if none) does not meet.
// info is the new module's raftkv_info (zero when not known yet). A deploy
// of the module already active meets them: a retry of a deploy that
// succeeded succeeds.
func CheckPreconditions(name string, old *Plugin, newHash string, create bool, ifHash string, force bool, info abi.Info) error {
	if old != nil && newHash != "" && old.mod.Hash == newHash {
		return nil
	}
	switch {
	case create && old != nil:
		return fmt.Errorf("%w: plugin %q is already active (hash %s): upgrading it needs its current hash (HTTP If-Match, raftkv plugin deploy --upgrade HASH)", ErrPrecondition, name, old.mod.Hash)
	case ifHash != "" && old == nil:
		return fmt.Errorf("%w: plugin %q is not active: nothing to upgrade (deploy it without If-Match/--upgrade)", ErrPrecondition, name)
	case ifHash != "" && ifHash != "*" && ifHash != old.mod.Hash:
		return fmt.Errorf("%w: plugin %q runs module %s, not %s (someone else upgraded it?)", ErrPrecondition, name, old.mod.Hash, ifHash)
	case !force && old != nil && old.mod.Info.Name != "" && info.Name != old.mod.Info.Name:
		// A module that gives no name differs too: it would take over the
		// state as surely as one with another name.
		return fmt.Errorf("%w: plugin %q runs a module named %q; this module calls itself %q and would take over its state (force it if that is meant)", ErrConflict, name, old.mod.Info.Name, info.Name)
	}
	return nil
}
