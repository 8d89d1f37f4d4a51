// Package transport carries all node-to-node traffic of raftkv over SSH
// (golang.org/x/crypto/ssh) with mutual public-key authentication: the raft
// streams of hashicorp/raft and the RPCs the node uses for leader
// forwarding and joining.
//
// # Identity and trust
//
// Every node has an ed25519 key in its data directory (LoadOrCreateKey,
// files KeyFile and PublicKeyFile). It serves as the node's SSH host key and
// as its client key. A trust.Trust (package host/trust, the trust list)
// binds public keys to node IDs, from the operator's authorized_keys file
// (the comment field of each line is the node ID, see trust.TrustLine) and
// from a replicated set the node maintains through the Raft log.
//
// A connection is accepted only when the client's user name is a node ID and
// the key it proved in the handshake is bound to that ID: a trusted key of
// node A cannot log in as node B. The dialling node asks Config.Resolve which
// node it means to reach at an address and accepts the server only if the
// server's host key is bound to that node. Keys are compared by their
// marshalled bytes. When the Trust changes (trust.Trust.Changed), live
// connections whose peer key is no longer bound to the peer's node ID are
// closed.
//
// # Streams and RPCs
//
// A Transport implements raft.StreamLayer; wrap it with
// raft.NewNetworkTransportWithConfig. A node keeps one SSH connection per
// remote address, dialled on first use and again after it dies, and every
// raft stream is an SSH channel of type "raft" on it, so any number of
// streams share one TCP connection. The net.Conn of a stream implements
// deadlines, which raft relies on (see chanConn). Call sends a request on an
// SSH channel of type "rpc" on the same connection; the remote RPCHandler
// learns the caller's proven node ID. RPC channels are kept for reuse, since
// forwarding is on the write path, and a call is never retried: after a
// connection error the request may or may not have been handled.
//
// # Networks
//
// A Transport listens and dials on TCP unless Config.Network gives it
// another stream network: anything with Listen and DialContext whose
// connections honour deadlines and wake blocked calls on Close. Everything
// above the raw connection — the SSH handshake, the key checks, the channels,
// keep-alives, and so raft's and the RPCs' authentication — is the same on
// every network. The in-process test cluster (internal/cluster) uses an
// in-memory network (internal/memnet) to run many-node tests without
// sockets and with partitions injected in the network itself; production
// always uses TCP.
//
// # Design notes
//
// Deadlines. An x/crypto/ssh channel has no deadlines and a blocked Read or
// Write only returns when the channel or connection closes. Each stream
// therefore has a read pump and a write pump goroutine that own the blocking
// calls and hand data to Read and Write through two buffers each, so a
// deadline interrupts Read and Write without harming the stream
// (golang.org/x/net/nettest.TestConn passes). This costs one extra goroutine
// hand-off per Read and per Write; BenchmarkStream's ssh-bare-writer case
// shows the throughput is that of x/crypto/ssh itself.
//
// Cipher. aes128-gcm@openssh.com is preferred over
// chacha20-poly1305@openssh.com: on amd64 with AES-NI it costs less CPU per
// byte and gives higher stream throughput (BenchmarkCipher). The key
// exchange prefers the post-quantum hybrid mlkem768x25519-sha256; it is
// paid once per connection (BenchmarkHandshake).
//
// Dead peers. Both ends send a keep-alive every 5 s and close a connection
// whose peer does not answer within 15 s, so a vanished peer is noticed and
// the next Dial redials; a peer that restarts closes its connections, which
// the other side notices at once. Opening a channel on a connection that
// broke before the channel existed is retried once on a new connection,
// since nothing was sent.
//
// An x/crypto/ssh race. An OpenChannel call that registers its channel just
// after the connection's read loop has failed is never answered. gateConn
// records a read failure before x/crypto/ssh acts on it and makes the SSH
// transport fail further writes, which closes that window except during a
// key re-exchange; serveConn gives channel opens on an ended connection a
// grace period and logs any that stay blocked instead of hanging Close.
//
// Goroutines. Every goroutine is started through Transport.goFunc (channel
// opens through sshConn.goOpen, for the reason above) and Close waits for
// all of them; the tests check this with go.uber.org/goleak.
package transport
