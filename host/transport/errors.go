package transport

import (
	"errors"
	"net"
)

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) unless they come from the operating system, the ssh
// package, package trust (a bad node ID: trust.ErrInvalidNodeID) or a
// context; a handler's error on the remote node comes back as a
// *RemoteError.
var (
	// ErrClosed is returned by Accept, Dial and Call once the Transport is
	// closed.
	ErrClosed = errors.New("transport: closed")

	// ErrInvalidConfig wraps every Config.Validate failure.
	ErrInvalidConfig = errors.New("transport: invalid config")

	// ErrUnknownNode is returned when Config.Resolve knows no node at the
	// address being dialled ("transport: no known node at <addr>").
	ErrUnknownNode = errors.New("transport: no known node")

	// ErrHostKeyMismatch is returned by Dial and Call when the peer's host
	// key is not the key the Trust binds to the node ID Resolve returned for
	// the address.
	ErrHostKeyMismatch = errors.New("transport: host key mismatch")

	// ErrInvalidKeyFile is returned by LoadOrCreateKey for a node key file
	// that is not an unencrypted OpenSSH ed25519 private key readable only
	// by its owner.
	ErrInvalidKeyFile = errors.New("transport: invalid node key file")

	// ErrMessageTooLarge is returned for an RPC request or response larger
	// than MaxMessageSize, or a method name longer than MaxMethodLen.
	ErrMessageTooLarge = errors.New("transport: message too large")

	// ErrProtocol is returned when a peer sends a malformed RPC frame.
	ErrProtocol = errors.New("transport: protocol error")
)

// RemoteError is the error a remote RPCHandler returned, carried back to
// the caller of Call. Receiving it means the remote handler ran to
// completion.
type RemoteError struct {
	Message string
}

func (e *RemoteError) Error() string { return "transport: remote: " + e.Message }

// opError wraps an error of a stream the way package net does, so that a
// deadline error (os.ErrDeadlineExceeded) is a net.Error with
// Timeout() == true and errors.Is still sees the cause.
func opError(op string, c *chanConn, err error) error {
	return &net.OpError{Op: op, Net: "ssh", Source: c.local, Addr: c.remote, Err: err}
}
