package transport

import (
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/trust"
)

// Forwarding declarations for code that still names the trust list's
// identifiers through this package: the FSM's files (host/fsm.go,
// host/snapshot.go and their tests), which are being moved to internal/fsm
// at the same time as the trust list moved to package trust. They go once
// internal/fsm has landed and imports package trust itself.

// Entry is trust.Entry.
//
// Deprecated: use package trust.
type Entry = trust.Entry

// Trust is trust.Trust.
//
// Deprecated: use package trust.
type Trust = trust.Trust

// TrustLine is trust.TrustLine.
//
// Deprecated: use package trust.
func TrustLine(pub ssh.PublicKey, nodeID string) string { return trust.TrustLine(pub, nodeID) }

// ParseTrustLine is trust.ParseTrustLine.
//
// Deprecated: use package trust.
func ParseTrustLine(line string) (Entry, error) { return trust.ParseTrustLine(line) }

// ValidateNodeID is trust.ValidateNodeID.
//
// Deprecated: use package trust.
func ValidateNodeID(id string) error { return trust.ValidateNodeID(id) }
