package host

// PluginEngine reports what runs the named plugin's code on n: "wasm",
// "native" (Config.NativePlugins), or "" when the plugin is not active.
func PluginEngine(n *Node, name string) string {
	p := n.fsm.plugin(name)
	if p == nil {
		return ""
	}
	return p.engine()
}
