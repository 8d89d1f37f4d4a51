package peerrpc

import (
	"crypto/subtle"
	"fmt"
)

// Role is what a caller is in the answering node's configuration.
type Role uint8

const (
	// Trusted: the caller's key is trusted for its ID, but the ID is not in
	// the configuration (a node about to join, or a key trusted for nothing).
	Trusted Role = iota
	// NonVoter: a member that receives the log without voting.
	NonVoter
	// Voter: a voting member.
	Voter
)

func (r Role) String() string {
	switch r {
	case Voter:
		return "voter"
	case NonVoter:
		return "non-voter"
	}
	return "trusted non-member"
}

// Access is who may call a method.
type Access uint8

const (
	// Members: voters and non-voters.
	Members Access = iota
	// Admin: voters, or any caller carrying the cluster token.
	Admin
	// Trusted: any caller whose key is trusted, member or not. Only a
	// ping: it tells the caller what it already knows (a node holding the
	// key answers at the address it dialled) and the Raft address that
	// node advertises, which a leader checks before it adds the node
	// (host/joinsafety.go).
	AnyTrusted
)

// Method is one RPC method.
type Method struct {
	Name   string
	Access Access
	// Self: a caller may always call the method about its own node ID
	// (join itself; a member may remove itself or publish its own
	// addresses), whatever Access says.
	Self bool
	// AnyNode: every node answers it (otherwise only the leader does, so a
	// request is forwarded at most once).
	AnyNode bool
}

// The methods. Their names are the wire's: never rename one.
var (
	Ping         = Method{Name: "ping", Access: AnyTrusted, AnyNode: true}
	Status       = Method{Name: "status", Access: Members, AnyNode: true}
	Apply        = Method{Name: "apply", Access: Members}
	Query        = Method{Name: "query", Access: Members} // stale queries: AnyNode (see host)
	Join         = Method{Name: "join", Access: Admin, Self: true}
	Remove       = Method{Name: "remove", Access: Admin, Self: true}
	Trust        = Method{Name: "trust", Access: Admin}
	Deploy       = Method{Name: "deploy", Access: Admin}
	RemovePlugin = Method{Name: "remove-plugin", Access: Admin}
	SetLimits    = Method{Name: "set-limits", Access: Admin}
	Quarantine   = Method{Name: "quarantine", Access: Admin}
	// Addresses: a member publishes its own API and management addresses.
	Addresses = Method{Name: "addresses", Access: Admin, Self: true}
	// Digest: the leader sends its state digests at a digest-check entry's
	// index; the member compares them with its own and answers them
	// (read-only: it records a divergence, changes no state).
	Digest = Method{Name: "digest", Access: Members, AnyNode: true}
	// PluginList: a leader or linearizable read of the plugin table (the
	// active plugins and the kept states), answered by the leader.
	PluginList = Method{Name: "plugin-list", Access: Members}
	// Voters: a member answers with the voters of its latest configuration
	// and their trust lines, for a voter that missed membership changes
	// (host/vouch.go).
	Voters = Method{Name: "voters", Access: Members, AnyNode: true}
)

var (
	all      = []Method{Ping, Status, Apply, Query, Join, Remove, Trust, Deploy, RemovePlugin, SetLimits, Quarantine, Addresses, Digest, PluginList, Voters}
	registry = map[string]Method{}
)

func init() {
	for _, m := range all {
		registry[m.Name] = m
	}
}

// Lookup returns the method called name.
func Lookup(name string) (Method, bool) {
	m, ok := registry[name]
	return m, ok
}

// Methods returns every method.
func Methods() []Method {
	return append([]Method(nil), all...)
}

// Caller is who calls.
type Caller struct {
	ID   string // proven over SSH
	Role Role
	// Token is the cluster token the request carries ("" for none).
	Token string
}

// Authorize decides whether c may call m. subject is the node the request
// is about (join, remove; "" otherwise); token is the answering node's
// cluster token ("" when it has none: then no request carries a valid one).
//
// A join of its own ID is open to a key that is not a member yet (it asks
// to join as itself); a non-voter's join of itself is a promotion, so it
// needs the token where the cluster has one (a read replica added by an
// operator, which holds no token, cannot make itself a voter). Without a
// token, every admin request of the HTTP API is open, and a non-voter
// killed before its promotion asks for it again (raftkv serve).
func Authorize(m Method, c Caller, subject, token string) error {
	if m.Self && subject != "" && subject == c.ID {
		switch {
		case m.Name != Join.Name && c.Role != Trusted:
			return nil // a member removes itself, publishes its addresses
		case m.Name == Join.Name && (c.Role != NonVoter || token == ""):
			return nil
		}
	}
	switch {
	case m.Access == AnyTrusted:
		return nil
	case c.Role == Trusted:
		return fmt.Errorf("%w: %s is not a member: a trusted key may only ping, or ask to join as its own node", ErrForbidden, c.ID)
	case m.Access == Members:
		return nil
	case c.Role == Voter:
		return nil
	case token != "" && subtle.ConstantTimeCompare([]byte(c.Token), []byte(token)) == 1:
		return nil
	}
	return fmt.Errorf("%w: %s needs a voter or the cluster token; %s is a %v", ErrForbidden, m.Name, c.ID, c.Role)
}
