package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// firewall cuts node-to-node traffic with iptables rules in a chain of its
// own, jumped to from OUTPUT (traffic on loopback passes OUTPUT once).
// Rules match the Raft (SSH) ports of the nodes concerned, which carry
// everything nodes say to each other (Raft, forwarded requests, status), so
// clients still reach every node's HTTP API, and another run's nodes on the
// same addresses are untouched. Packets are dropped, not refused: a peer
// behind a partition is silent, as a real one is.
type firewall struct {
	chain string
	mu    sync.Mutex
	rules [][]string // installed, to be removed on heal
}

// newFirewall creates the chain. Without iptables (or root), partitions
// cannot be injected: the run fails, it does not skip them.
func newFirewall() (*firewall, error) {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, fmt.Errorf("iptables is not installed (scripts/deps.sh installs it): partitions cannot be injected: %w", err)
	}
	f := &firewall{chain: fmt.Sprintf("RAFTKV-CHAOS-%d", os.Getpid())}
	if err := ipt("-N", f.chain); err != nil {
		return nil, fmt.Errorf("partitions cannot be injected (needs root): %w", err)
	}
	if err := ipt("-I", "OUTPUT", "-j", f.chain); err != nil {
		ipt("-X", f.chain)
		return nil, err
	}
	return f, nil
}

func ipt(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// cut drops every packet between a and b on either one's Raft port, in
// both directions.
func (f *firewall) cut(a, b *node) error {
	for _, r := range [][]string{
		{"-s", a.ip, "-d", b.ip, "--dport", port(b.raft)},
		{"-s", b.ip, "-d", a.ip, "--sport", port(b.raft)},
		{"-s", b.ip, "-d", a.ip, "--dport", port(a.raft)},
		{"-s", a.ip, "-d", b.ip, "--sport", port(a.raft)},
	} {
		rule := append([]string{"-p", "tcp"}, r...)
		rule = append(rule, "-j", "DROP")
		if err := ipt(append([]string{"-A", f.chain}, rule...)...); err != nil {
			return err
		}
		f.mu.Lock()
		f.rules = append(f.rules, rule)
		f.mu.Unlock()
	}
	return nil
}

// partition cuts every node of one group from every node of the others.
func (f *firewall) partition(groups ...[]*node) error {
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					if err := f.cut(a, b); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// heal removes every rule.
func (f *firewall) heal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
	return ipt("-F", f.chain)
}

// close removes the chain and the jump to it.
func (f *firewall) close() error {
	f.heal()
	err := ipt("-D", "OUTPUT", "-j", f.chain)
	if err2 := ipt("-X", f.chain); err == nil {
		err = err2
	}
	return err
}

func port(hostport string) string { return hostport[strings.LastIndexByte(hostport, ':')+1:] }
