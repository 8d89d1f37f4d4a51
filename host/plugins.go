package host

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/state"
)

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

// DeployPlugin deploys a module as the named plugin through the log: every
// node activates it at the same index. The leader validates it first (it
// compiles, exports a supported ABI marker, imports only host functions, fits
// the size limit, and the active plugins stay within MaxPlugins and
// MaxPluginBytes); an invalid module is refused with ErrInvalid and the
// reason, and nothing is replicated. Replacing a plugin keeps its state and
// runs the new module's migrate entry point once; a failing migration leaves
// the old module active everywhere.
func (n *Node) DeployPlugin(ctx context.Context, name string, wasm []byte) (PluginInfo, error) {
	if err := ValidPluginName(name); err != nil {
		return PluginInfo{}, err
	}
	if len(wasm) > abi.MaxModuleSize {
		return PluginInfo{}, fmt.Errorf("%w: module of %d bytes exceeds the %d-byte limit", ErrInvalid, len(wasm), abi.MaxModuleSize)
	}
	if n.isLeader() {
		return n.deployLocal(ctx, name, wasm)
	}
	res, err := n.forward(ctx, rpcDeploy, &rpcRequest{Plugin: name, Data: wasm})
	if err != nil {
		return PluginInfo{}, err
	}
	var info PluginInfo // the leader's view, as this node may not have applied it yet
	if err := abi.Unmarshal(res.Data, &info); err != nil {
		return PluginInfo{}, fmt.Errorf("raftkv: bad deploy response: %w", err)
	}
	return info, nil
}

func (n *Node) deployLocal(ctx context.Context, name string, wasm []byte) (PluginInfo, error) {
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
	mod, err := n.rt.Load(ctx, wasm) // validates; compiled code is cached for the apply
	if err != nil {
		return PluginInfo{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	mod.Close(ctx)
	r, err := n.propose(ctx, envelope{Kind: kindDeploy, Plugin: name, Payload: wasm})
	if err == nil {
		err = r.err
	}
	if err != nil {
		return PluginInfo{}, err
	}
	for _, p := range n.Plugins() { // applied here: the leader applied it before answering
		if p.Name == name {
			return p, nil
		}
	}
	return PluginInfo{}, fmt.Errorf("raftkv: plugin %q not active after its deploy", name)
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
// is deleted too. The default plugin cannot be removed.
func (n *Node) RemovePlugin(ctx context.Context, name string, dropState bool) error {
	if name == DefaultPluginName {
		return fmt.Errorf("%w: the default plugin %q cannot be removed (deploy a new version instead)", ErrInvalid, name)
	}
	if !n.isLeader() {
		_, err := n.forward(ctx, rpcRemovePlugin, &rpcRequest{Plugin: name, Drop: dropState})
		return err
	}
	return n.removePluginLocal(ctx, name, dropState)
}

func (n *Node) removePluginLocal(ctx context.Context, name string, dropState bool) error {
	if name == DefaultPluginName {
		return fmt.Errorf("%w: the default plugin %q cannot be removed", ErrInvalid, name)
	}
	if n.fsm.plugin(name) == nil {
		return fmt.Errorf("%w: plugin %q", ErrNotFound, name)
	}
	payload, _ := abi.Marshal(&removePlugin{DropState: dropState})
	r, err := n.propose(ctx, envelope{Kind: kindRemovePlugin, Plugin: name, Payload: payload})
	if err != nil {
		return err
	}
	return r.err
}

// Plugins lists the plugins active on this node.
func (n *Node) Plugins() []PluginInfo { return n.fsm.pluginInfos() }

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
	view, index := n.fsm.view()
	d := Digest{Plugin: name, AppliedIndex: index}
	ns, ok := view.Namespace(name)
	if !ok {
		if n.fsm.plugin(name) == nil {
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
