package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"
)

// Benchmarks compare the SSH transport with plain TCP on loopback in the
// same run:
//
//	go test -run '^$' -bench . -benchtime 2s ./host/transport/
//
// BenchmarkStream reports MB/s of one raft-style stream, BenchmarkCall the
// round trip of a 100-byte RPC, BenchmarkCipher both for each AEAD cipher,
// BenchmarkHandshake the cost of a new connection per key exchange and
// BenchmarkRaftApply the commit latency and throughput of a 3-node raft
// cluster over each transport.

// cpuTime returns the CPU time (user + system) the process has used. The
// benchmarks report CPU per byte or per call next to wall time: both ends run
// in this process, so it is the whole cost of the transport, and it is
// steadier than wall time on a busy machine.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports CPU time per unit when stopped.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) cpuMeter { return cpuMeter{b, cpuTime(b)} }

func (m cpuMeter) report(units float64, unit string) {
	m.b.ReportMetric(float64(cpuTime(m.b)-m.start)/units, "cpu-ns/"+unit)
}

// quiet drops the transport logs in benchmarks.
func quiet(cfg *Config) { cfg.Logger = nil }

func withCiphers(ciphers ...string) func(*Config) {
	return func(cfg *Config) { quiet(cfg); cfg.ciphers = ciphers }
}

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c2 := <-accepted
	b.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

// benchStream writes b.N chunks of 256 KiB (raft's bufio writers flush in
// such chunks when replicating big batches or snapshots) from w to r.
func benchStream(b *testing.B, w, r net.Conn) {
	const chunk = 256 << 10
	buf := make([]byte, chunk)
	done := make(chan int64, 1)
	go func() {
		rb := make([]byte, 64<<10)
		var n int64
		for {
			k, err := r.Read(rb)
			n += int64(k)
			if err != nil {
				done <- n
				return
			}
		}
	}()
	b.SetBytes(chunk)
	b.ResetTimer()
	cpu := startCPU(b)
	for range b.N {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	if n := <-done; n != int64(b.N)*chunk {
		b.Fatalf("received %d bytes, want %d", n, int64(b.N)*chunk)
	}
	cpu.report(float64(b.N)*chunk, "B")
}

func BenchmarkStream(b *testing.B) {
	b.Run("ssh", func(b *testing.B) {
		c := newCluster(b, quiet, "a", "b")
		cl, srv := c.dialPair("a", "b")
		benchStream(b, cl, srv)
	})
	b.Run("tcp", func(b *testing.B) {
		c1, c2 := tcpPair(b)
		benchStream(b, c1, c2)
	})
	// The bare x/crypto/ssh channel on the writing side, without chanConn's
	// deadline machinery: what that machinery costs.
	b.Run("ssh-bare-writer", func(b *testing.B) {
		c := newCluster(b, quiet, "a", "b")
		sc, err := c.nodes["a"].tr.conn(context.Background(), c.addr("b"))
		if err != nil {
			b.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			s, _ := c.nodes["b"].tr.Accept()
			accepted <- s
		}()
		ch, reqs, err := sc.conn.OpenChannel(chanRaft, nil)
		if err != nil {
			b.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		benchStream(b, bareChannel{ch}, <-accepted)
	})
}

// bareChannel is an ssh.Channel as a net.Conn without deadlines.
type bareChannel struct{ ssh.Channel }

func (bareChannel) LocalAddr() net.Addr              { return nil }
func (bareChannel) RemoteAddr() net.Addr             { return nil }
func (bareChannel) SetDeadline(time.Time) error      { return nil }
func (bareChannel) SetReadDeadline(time.Time) error  { return nil }
func (bareChannel) SetWriteDeadline(time.Time) error { return nil }

var echoHandler RPCHandler = func(_ context.Context, _, _ string, req []byte) ([]byte, error) { return req, nil }

func benchCallSSH(b *testing.B, mod func(*Config)) {
	c := newCluster(b, func(cfg *Config) { mod(cfg); cfg.RPCHandler = echoHandler }, "a", "b")
	a, addr := c.nodes["a"].tr, c.addr("b")
	req := make([]byte, 100)
	ctx := context.Background()
	if _, err := a.Call(ctx, addr, "echo", req); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu := startCPU(b)
	for range b.N {
		if _, err := a.Call(ctx, addr, "echo", req); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(float64(b.N), "call")
}

// tcpRPC serves the RPC frame format on plain TCP: the baseline for Call.
func tcpRPC(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bufio.NewReaderSize(c, 16<<10)
				for {
					_, _, req, err := readRequest(r)
					if err != nil {
						return
					}
					if writeResponse(c, statusOK, req) != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func tcpCall(c net.Conn, req []byte) error {
	if err := writeRequest(c, 0, "echo", req); err != nil {
		return err
	}
	_, _, err := readResponse(c)
	return err
}

func BenchmarkCall(b *testing.B) {
	b.Run("ssh", func(b *testing.B) { benchCallSSH(b, quiet) })
	b.Run("tcp", func(b *testing.B) {
		c, err := net.Dial("tcp", tcpRPC(b))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		req := make([]byte, 100)
		b.ResetTimer()
		cpu := startCPU(b)
		for range b.N {
			if err := tcpCall(c, req); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(float64(b.N), "call")
	})
}

// BenchmarkCallParallel runs calls from GOMAXPROCS×4 goroutines at once (the
// forwarding load of many clients on a follower).
func BenchmarkCallParallel(b *testing.B) {
	b.Run("ssh", func(b *testing.B) {
		c := newCluster(b, func(cfg *Config) { quiet(cfg); cfg.RPCHandler = echoHandler }, "a", "b")
		a, addr := c.nodes["a"].tr, c.addr("b")
		b.SetParallelism(4)
		b.ResetTimer()
		cpu := startCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			req := make([]byte, 100)
			for pb.Next() {
				if _, err := a.Call(context.Background(), addr, "echo", req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		cpu.report(float64(b.N), "call")
	})
	b.Run("tcp", func(b *testing.B) {
		addr := tcpRPC(b)
		b.SetParallelism(4)
		b.ResetTimer()
		cpu := startCPU(b)
		defer cpu.report(float64(b.N), "call")
		b.RunParallel(func(pb *testing.PB) {
			c, err := net.Dial("tcp", addr) // one connection per goroutine: a pool
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			req := make([]byte, 100)
			for pb.Next() {
				if err := tcpCall(c, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkCipher compares the AEAD ciphers x/crypto/ssh offers on stream
// throughput and call round trip.
func BenchmarkCipher(b *testing.B) {
	for _, cipher := range []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM} {
		b.Run(cipher+"/stream", func(b *testing.B) {
			c := newCluster(b, withCiphers(cipher), "a", "b")
			cl, srv := c.dialPair("a", "b")
			benchStream(b, cl, srv)
		})
		b.Run(cipher+"/call", func(b *testing.B) { benchCallSSH(b, withCiphers(cipher)) })
	}
}

// BenchmarkHandshake measures a new connection: TCP connect, key exchange,
// host key check and public key authentication.
func BenchmarkHandshake(b *testing.B) {
	for _, kex := range []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519} {
		b.Run(kex, func(b *testing.B) {
			c := newCluster(b, func(cfg *Config) { quiet(cfg); cfg.keyExchanges = []string{kex} }, "a", "b")
			a, addr := c.nodes["a"].tr, c.addr("b")
			b.ResetTimer()
			for range b.N {
				sc, _, _, err := a.connect(addr, "b")
				if err != nil {
					b.Fatal(err)
				}
				sc.conn.Close()
				sc.conn.Wait()
			}
		})
	}
}

// BenchmarkRaftApply measures raft.Apply of 100-byte commands on the leader
// of a 3-node cluster with in-memory stores, so the network is what differs:
// one client at a time (c1) and 64 at once (c64).
func BenchmarkRaftApply(b *testing.B) {
	for _, kind := range []string{"ssh", "tcp"} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/c%d", kind, clients), func(b *testing.B) {
				leader := raftBenchCluster(b, kind)
				cmd := make([]byte, 100)
				var wg sync.WaitGroup
				per := b.N / clients
				extra := b.N % clients
				b.ResetTimer()
				cpu := startCPU(b)
				for i := range clients {
					n := per
					if i < extra {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range n {
							if err := leader.Apply(cmd, 10*time.Second).Error(); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
				cpu.report(float64(b.N), "apply")
			})
		}
	}
}

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return listSnapshot(nil), nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// raftBenchCluster starts 3 raft nodes over the given transport kind and
// returns the leader.
func raftBenchCluster(b *testing.B, kind string) *raft.Raft {
	ids := []string{"n1", "n2", "n3"}
	logger := hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	trans := map[string]raft.Transport{}
	var servers []raft.Server
	if kind == "ssh" {
		c := newCluster(b, quiet, ids...)
		for _, id := range ids {
			trans[id] = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: c.nodes[id].tr, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
			})
		}
	} else {
		for _, id := range ids {
			t, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, logger)
			if err != nil {
				b.Fatal(err)
			}
			trans[id] = t
			// raft's Close leaves pooled connections open, and with them the
			// peers' handler goroutines; runs after the rafts' Shutdown.
			b.Cleanup(t.CloseStreams)
		}
	}
	for _, id := range ids {
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: trans[id].LocalAddr()})
	}
	var rafts []*raft.Raft
	for _, id := range ids {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(id)
		conf.Logger = logger // raft's default timeouts: the machine may be busy
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), trans[id])
		if err != nil {
			b.Fatal(err)
		}
		rafts = append(rafts, r)
		b.Cleanup(func() { r.Shutdown().Error() })
	}
	if err := rafts[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		b.Fatal(err)
	}
	var leader *raft.Raft
	poll(b, "a leader", func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
				return true
			}
		}
		return false
	})
	// Warm up: connections and pipelines to both followers.
	for range 100 {
		if err := leader.Apply(nil, 10*time.Second).Error(); err != nil {
			b.Fatal(err)
		}
	}
	return leader
}

// BenchmarkCallDuringStream measures a small call's round trip (a Raft
// heartbeat's stand-in) between two nodes while a big write (a deploy's
// 32 MiB log entry) streams between them over the same SSH connection: the
// head-of-line delay a heartbeat suffers behind a big AppendEntries.
func BenchmarkCallDuringStream(b *testing.B) {
	for _, streaming := range []bool{false, true} {
		name := map[bool]string{false: "idle", true: "streaming"}[streaming]
		b.Run(name, func(b *testing.B) {
			c := newCluster(b, func(cfg *Config) { quiet(cfg); cfg.RPCHandler = echoHandler }, "a", "b")
			a, addr := c.nodes["a"].tr, c.addr("b")
			if streaming {
				w, r := c.dialPair("a", "b")
				stop := make(chan struct{})
				flowing := make(chan error, 1)
				go func() {
					_, err := io.ReadFull(r, make([]byte, 1))
					flowing <- err
					io.Copy(io.Discard, r)
				}()
				go func() {
					buf := make([]byte, 32<<20)
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := w.Write(buf); err != nil {
							return
						}
					}
				}()
				b.Cleanup(func() { close(stop); w.Close(); r.Close() })
				select { // the stream is under way
				case err := <-flowing:
					if err != nil {
						b.Fatalf("the stream: %v", err)
					}
				case <-time.After(10 * time.Second):
					b.Fatal("no byte of the stream arrived in 10 s")
				}
			}
			req := make([]byte, 100)
			var worst time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := a.Call(context.Background(), addr, "echo", req); err != nil {
					b.Fatal(err)
				}
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds()), "max-µs/call")
		})
	}
}
