package host

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/internal/fsm"
)

// Limits on the active plugins, which every snapshot carries (the modules'
// bytes are in its header, read into memory whole). The leader refuses a
// deploy that would exceed them with ErrInvalid; the default plugin counts.
const (
	// MaxPlugins is the most plugins active at once.
	MaxPlugins = fsm.MaxPlugins
	// MaxPluginBytes bounds the total size of the active modules' .wasm.
	MaxPluginBytes = fsm.MaxPluginBytes
)

// ValidPluginName reports whether name can name a plugin: a lowercase letter,
// then up to 62 lowercase letters, digits, '-' or '_'.
func ValidPluginName(name string) error { return fsm.ValidPluginName(name) }

// PluginInfo describes an active plugin.
type PluginInfo = fsm.PluginInfo

// KeptState is the state of a removed plugin, kept because it was removed
// without drop_state.
type KeptState = fsm.KeptState

// DeployPlugin deploys a module as the named plugin through the log: every
// node activates it at the same index, with the same limits. The leader
// validates it first (it compiles, exports a supported ABI marker, imports
// only host functions, fits the size limit, and the active plugins stay
// within MaxPlugins and MaxPluginBytes); an invalid module is refused with
// ErrInvalid and the reason, and nothing is replicated. Replacing a plugin
// keeps its state and runs the new module's migrate entry point once; a
// failing migration leaves the old module active everywhere. DeployPlugin
// has no preconditions: see DeployPluginWith.
func (n *Node) DeployPlugin(ctx context.Context, name string, wasm []byte) (PluginInfo, error) {
	return n.DeployPluginWith(ctx, name, wasm, DeployOptions{Force: true})
}

// DeployPluginWith deploys a module as DeployPlugin does, with limits and
// preconditions (DeployOptions). The preconditions are checked by the leader
// before it proposes the deploy and again when the entry is applied, so two
// concurrent upgrades cannot both succeed.
func (n *Node) DeployPluginWith(ctx context.Context, name string, wasm []byte, opts DeployOptions) (PluginInfo, error) {
	if err := ValidPluginName(name); err != nil {
		return PluginInfo{}, err
	}
	if len(wasm) > abi.MaxModuleSize {
		return PluginInfo{}, fmt.Errorf("%w: module of %d bytes exceeds the %d-byte limit", ErrInvalid, len(wasm), abi.MaxModuleSize)
	}
	if n.isLeader() {
		return n.deployLocal(ctx, name, wasm, opts)
	}
	res, err := n.forward(ctx, &peerrpc.DeployBody{Plugin: name, Wasm: wasm, Options: opts})
	if err != nil {
		return PluginInfo{}, err
	}
	var info PluginInfo // the leader's view, as this node may not have applied it yet
	if err := abi.Unmarshal(res.Data, &info); err != nil {
		return PluginInfo{}, fmt.Errorf("raftkv: bad deploy response: %w", err)
	}
	return info, nil
}

func (n *Node) deployLocal(ctx context.Context, name string, wasm []byte, opts DeployOptions) (PluginInfo, error) {
	if err := ValidPluginName(name); err != nil {
		return PluginInfo{}, err
	}
	// One deploy at a time, so that the limits hold for the plugins this
	// leader has applied when the next deploy is checked.
	n.deployMu.Lock()
	defer n.deployMu.Unlock()
	if err := checkPluginLimits(n.Plugins(), name, len(wasm)); err != nil {
		return PluginInfo{}, err
	}
	old := n.fsm.Plugin(name)
	hash := plugin.HashOf(wasm)
	if err := fsm.CheckPreconditions(name, old, hash, opts.Create, opts.IfHash, true, abi.Info{}); err != nil {
		return PluginInfo{}, err
	}
	lim, err := n.resolveLimits(name, opts)
	if err != nil {
		return PluginInfo{}, err
	}
	mod, err := n.rt.Load(ctx, wasm, plugin.LoadOptions{Name: name, Limits: lim}) // validates; compiled code is cached for the apply
	if err != nil {
		return PluginInfo{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	info := mod.Info
	mod.Close(ctx)
	if err := fsm.CheckPreconditions(name, old, hash, false, "", opts.Force, info); err != nil {
		return PluginInfo{}, err
	}
	spec := fsm.DeploySpec{Wasm: wasm, Limits: lim, Create: opts.Create, IfHash: opts.IfHash, Force: opts.Force}
	r, err := n.propose(ctx, fsm.Envelope{Kind: fsm.KindDeploy, Plugin: name, Payload: spec.Encode()})
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return PluginInfo{}, err
	}
	return n.appliedPlugin(name)
}

// appliedPlugin returns the named plugin's info after the leader applied a
// change to it (it applies an entry before answering its proposal).
func (n *Node) appliedPlugin(name string) (PluginInfo, error) {
	for _, p := range n.Plugins() {
		if p.Name == name {
			return p, nil
		}
	}
	return PluginInfo{}, fmt.Errorf("raftkv: plugin %q not active after its change", name)
}

// SetPluginLimits changes an active plugin's limits through the log: every
// node loads its module again with the new limits at the same index (no
// migration runs; its state is kept). With ifHash set, only if the active
// module has that hash (else ErrPrecondition).
func (n *Node) SetPluginLimits(ctx context.Context, name string, p LimitsPatch, ifHash string) (PluginInfo, error) {
	if err := ValidPluginName(name); err != nil {
		return PluginInfo{}, err
	}
	if !n.isLeader() {
		res, err := n.forward(ctx, &peerrpc.SetLimitsBody{Plugin: name, Patch: p, IfHash: ifHash})
		if err != nil {
			return PluginInfo{}, err
		}
		var info PluginInfo
		if err := abi.Unmarshal(res.Data, &info); err != nil {
			return PluginInfo{}, fmt.Errorf("raftkv: bad set-limits response: %w", err)
		}
		return info, nil
	}
	return n.setLimitsLocal(ctx, name, p, ifHash)
}

func (n *Node) setLimitsLocal(ctx context.Context, name string, p LimitsPatch, ifHash string) (PluginInfo, error) {
	n.deployMu.Lock()
	defer n.deployMu.Unlock()
	old := n.fsm.Plugin(name)
	if old == nil {
		return PluginInfo{}, fmt.Errorf("%w: plugin %q", ErrNotFound, name)
	}
	if err := fsm.CheckPreconditions(name, old, "", false, ifHash, true, abi.Info{}); err != nil {
		return PluginInfo{}, err
	}
	lim, err := n.checkLimits(p.Over(old.Module().Limits))
	if err != nil {
		return PluginInfo{}, err
	}
	payload, err := abi.Marshal(&fsm.SetLimitsSpec{Limits: lim, IfHash: ifHash})
	if err != nil {
		return PluginInfo{}, err
	}
	r, err := n.propose(ctx, fsm.Envelope{Kind: fsm.KindSetLimits, Plugin: name, Payload: payload})
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return PluginInfo{}, err
	}
	return n.appliedPlugin(name)
}

// ResetDefaultPlugin deploys the module built into the node (Config.
// DefaultPlugin) as the default plugin again, with the default limits,
// whatever module it runs now: the way back from a broken upgrade of kv.
// Its state is kept; the built-in module's migration runs.
func (n *Node) ResetDefaultPlugin(ctx context.Context) (PluginInfo, error) {
	if n.cfg.DefaultPlugin == nil {
		return PluginInfo{}, fmt.Errorf("%w: this node has no built-in default plugin", ErrInvalid)
	}
	d := plugin.DefaultLimits()
	patch := LimitsPatch{
		ApplyFuel: &d.ApplyFuel, QueryFuel: &d.QueryFuel, LoadFuel: &d.LoadFuel, MemoryPages: &d.MemoryPages,
		MaxWriteBytes: &d.MaxWriteBytes, MaxNamespaceKeys: &d.MaxNamespaceKeys, MaxNamespaceBytes: &d.MaxNamespaceBytes, MaxLogBytes: &d.MaxLogBytes,
	}
	return n.DeployPluginWith(ctx, DefaultPluginName, n.cfg.DefaultPlugin, DeployOptions{Limits: patch, Force: true})
}

// checkPluginLimits refuses a deploy of size bytes as the named plugin that
// would take the active plugins past MaxPlugins or MaxPluginBytes (a new
// version replaces the old one's bytes).
func checkPluginLimits(active []PluginInfo, name string, size int) error {
	count, total := 1, size
	for _, p := range active {
		if p.Name != name {
			count++
			total += p.Size
		}
	}
	if count > MaxPlugins {
		return fmt.Errorf("%w: plugin %q would be active plugin number %d; the limit is %d (remove one first)", ErrInvalid, name, count, MaxPlugins)
	}
	if total > MaxPluginBytes {
		return fmt.Errorf("%w: with plugin %q the active modules would total %d bytes; the limit is %d (remove one first)", ErrInvalid, name, total, MaxPluginBytes)
	}
	return nil
}

// RemovePlugin deactivates a plugin on every node; with dropState its state
// is deleted too. Without it the state is kept (KeptStates lists it; a
// redeploy under the same name finds it), and RemovePlugin(name, true) on the
// removed plugin deletes it later, through the log. The default plugin
// cannot be removed.
func (n *Node) RemovePlugin(ctx context.Context, name string, dropState bool) error {
	if name == DefaultPluginName {
		return fmt.Errorf("%w: the default plugin %q cannot be removed (deploy a new version or reset it instead)", ErrInvalid, name)
	}
	if !n.isLeader() {
		_, err := n.forward(ctx, &peerrpc.RemovePluginBody{Plugin: name, DropState: dropState})
		return err
	}
	return n.removePluginLocal(ctx, name, dropState)
}

func (n *Node) removePluginLocal(ctx context.Context, name string, dropState bool) error {
	if name == DefaultPluginName {
		return fmt.Errorf("%w: the default plugin %q cannot be removed", ErrInvalid, name)
	}
	if n.fsm.Plugin(name) == nil && !(dropState && n.fsm.HasKeptState(name)) {
		return fmt.Errorf("%w: plugin %q", ErrNotFound, name)
	}
	payload, _ := abi.Marshal(&fsm.RemovePlugin{DropState: dropState})
	r, err := n.propose(ctx, fsm.Envelope{Kind: fsm.KindRemovePlugin, Plugin: name, Payload: payload})
	if err != nil {
		return err
	}
	return r.Err
}

// Plugins lists the plugins active on this node.
func (n *Node) Plugins() []PluginInfo { return n.fsm.PluginInfos() }

// KeptStates lists, from this node's state, the namespaces that hold state
// but have no active plugin, in name order.
func (n *Node) KeptStates() []KeptState { return n.fsm.KeptStates() }

// PluginsAt lists the active plugins and the kept states at a consistency
// level, as a read of the plugin table: Stale from this node's state;
// Leader and Linearizable from the leader's (after it confirms its
// leadership, and for Linearizable after it applies its commit index), so
// that a deploy or removal that has returned shows. A follower forwards
// those to the leader, as Query does, and returns the leader's answer
// (its counters are the leader's).
func (n *Node) PluginsAt(ctx context.Context, level Consistency) ([]PluginInfo, []KeptState, error) {
	if level > Linearizable {
		return nil, nil, fmt.Errorf("%w: unknown consistency %d", ErrInvalid, level)
	}
	if level == Stale || n.isLeader() {
		return n.pluginsLocal(ctx, level)
	}
	res, err := n.forward(ctx, &peerrpc.PluginListBody{Level: level})
	if err != nil {
		return nil, nil, err
	}
	var l peerrpc.PluginListAnswer
	if err := abi.Unmarshal(res.Data, &l); err != nil {
		return nil, nil, fmt.Errorf("raftkv: bad plugin list from the leader: %w", err)
	}
	return l.Plugins, l.KeptStates, nil
}

// pluginsLocal reads this node's plugin table; Leader and Linearizable only
// on the leader.
func (n *Node) pluginsLocal(ctx context.Context, level Consistency) ([]PluginInfo, []KeptState, error) {
	if level != Stale {
		if !n.isLeader() {
			return nil, nil, fmt.Errorf("%w: a %s read of the plugin list is answered by the leader", ErrNotLeader, level)
		}
		if err := n.fsm.Stopped(); err != nil {
			return nil, nil, err
		}
		var readIndex uint64
		if level == Linearizable {
			readIndex = n.raft.CommitIndex()
		}
		if err := n.verifyLeader(ctx); err != nil {
			return nil, nil, err
		}
		if err := n.waitApplied(ctx, readIndex); err != nil {
			return nil, nil, err
		}
	}
	return n.fsm.PluginInfos(), n.fsm.KeptStates(), nil
}

// Digest is a hash of one plugin namespace's state at an applied index.
type Digest struct {
	Plugin       string `json:"plugin"`
	Digest       string `json:"digest"` // hex sha256
	AppliedIndex uint64 `json:"applied_index"`
	Keys         int    `json:"keys"`
}

// StateDigest hashes the named namespace's local state. Replicas at the same
// applied index must report the same digest.
func (n *Node) StateDigest(name string) (Digest, error) {
	view, index := n.fsm.View()
	d := Digest{Plugin: name, AppliedIndex: index}
	ns, ok := view.Namespace(name)
	if !ok {
		if n.fsm.Plugin(name) == nil {
			return d, fmt.Errorf("%w: plugin %q", ErrNotFound, name)
		}
		ns = emptyNamespace(name) // never written: the same digest as an emptied one
	}
	sum := ns.Digest()
	d.Digest, d.Keys = hex.EncodeToString(sum[:]), ns.Len()
	return d, nil
}

// emptyNamespace returns a view of an empty namespace.
func emptyNamespace(name string) *state.NamespaceView {
	s := state.New()
	s.Update(func() { s.Namespace(name) })
	ns, _ := s.View().Namespace(name)
	return ns
}
