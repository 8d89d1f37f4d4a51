package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rpcCluster starts nodes whose handler is h.
func rpcCluster(t *testing.T, h RPCHandler, ids ...string) *cluster {
	return newCluster(t, func(cfg *Config) { cfg.RPCHandler = h }, ids...)
}

func TestCallRoundTrip(t *testing.T) {
	noLeaks(t)
	c := rpcCluster(t, func(_ context.Context, peer, method string, req []byte) ([]byte, error) {
		return []byte(peer + "/" + method + "/" + string(req)), nil
	}, "a", "b")
	resp, err := c.nodes["a"].tr.Call(context.Background(), c.addr("b"), "forward", []byte("cmd"))
	if err != nil {
		t.Fatal(err)
	}
	// The handler sees the node ID a proved, not a claimed one.
	if string(resp) != "a/forward/cmd" {
		t.Fatalf("response %q", resp)
	}
	// Empty request and response.
	c2 := rpcCluster(t, func(context.Context, string, string, []byte) ([]byte, error) { return nil, nil }, "x", "y")
	resp, err = c2.nodes["x"].tr.Call(context.Background(), c2.addr("y"), "", nil)
	if err != nil || len(resp) != 0 {
		t.Fatalf("empty call: %q, %v", resp, err)
	}
}

func TestCallRemoteError(t *testing.T) {
	noLeaks(t)
	c := rpcCluster(t, func(_ context.Context, _, method string, _ []byte) ([]byte, error) {
		if method == "panic" {
			panic("boom")
		}
		return nil, errors.New("raftkv: not leader")
	}, "a", "b")
	a := c.nodes["a"].tr
	_, err := a.Call(context.Background(), c.addr("b"), "apply", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "raftkv: not leader" {
		t.Fatalf("Call: %v, want RemoteError{raftkv: not leader}", err)
	}
	_, err = a.Call(context.Background(), c.addr("b"), "panic", nil)
	if !errors.As(err, &re) || !strings.Contains(re.Message, "panicked: boom") {
		t.Fatalf("Call to a panicking handler: %v", err)
	}
	mustContain(t, c.nodes["b"].logs.String(), "RPC handler panicked")
	// The channel and the node survive both.
	_, err = a.Call(context.Background(), c.addr("b"), "apply", nil)
	if !errors.As(err, &re) {
		t.Fatalf("Call after the panic: %v", err)
	}
	// A node without a handler answers with a RemoteError too.
	c2 := newCluster(t, nil, "x", "y")
	_, err = c2.nodes["x"].tr.Call(context.Background(), c2.addr("y"), "m", nil)
	if !errors.As(err, &re) || !strings.Contains(re.Message, "serves no RPCs") {
		t.Fatalf("Call to a node without handler: %v", err)
	}
}

// TestCallContextDeadline: the caller's deadline aborts the call and
// reaches the remote handler's context.
func TestCallContextDeadline(t *testing.T) {
	noLeaks(t)
	handlerErr := make(chan error, 1)
	c := rpcCluster(t, func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			handlerErr <- errors.New("handler context has no deadline")
			return nil, nil
		}
		<-ctx.Done()
		handlerErr <- ctx.Err()
		return nil, ctx.Err()
	}, "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.nodes["a"].tr.Call(ctx, c.addr("b"), "slow", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call: %v, want context.DeadlineExceeded", err)
	}
	// Depending on which timer fires first, the handler's error may come
	// back too; if it does it is a RemoteError.
	var re *RemoteError
	if errors.As(err, &re) && re.Message != context.DeadlineExceeded.Error() {
		t.Fatalf("remote part of the error: %q", re.Message)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Call returned after %v", d)
	}
	if err := <-handlerErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handler context ended with %v", err)
	}
}

// TestCallCancel: cancelling the context aborts a call whose handler does
// not return, and the transport stays usable.
func TestCallCancel(t *testing.T) {
	noLeaks(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	c := rpcCluster(t, func(_ context.Context, _, method string, _ []byte) ([]byte, error) {
		if method == "stuck" {
			entered <- struct{}{}
			<-release
		}
		return []byte("ok"), nil
	}, "a", "b")
	defer close(release) // before the cluster closes, which waits for handlers
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.nodes["a"].tr.Call(ctx, c.addr("b"), "stuck", nil)
		errc <- err
	}()
	<-entered
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Call: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not abort the call")
	}
	if _, err := c.nodes["a"].tr.Call(context.Background(), c.addr("b"), "quick", nil); err != nil {
		t.Fatalf("Call after a cancelled call: %v", err)
	}
	if _, err := c.nodes["a"].tr.Call(ctx, c.addr("b"), "quick", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with a cancelled context: %v", err)
	}
}

func TestCallConcurrent(t *testing.T) {
	noLeaks(t)
	c := rpcCluster(t, func(_ context.Context, peer, _ string, req []byte) ([]byte, error) {
		return append([]byte(peer+":"), req...), nil
	}, "a", "b", "c")
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for _, from := range []string{"a", "c"} {
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					req := fmt.Appendf(nil, "%d-%d", g, i)
					resp, err := c.nodes[from].tr.Call(context.Background(), c.addr("b"), "m", req)
					if err != nil {
						errs <- err
						return
					}
					if want := from + ":" + string(req); string(resp) != want {
						errs <- fmt.Errorf("got %q, want %q", resp, want)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out, _ := sshConns(c.nodes["a"].tr)
	if len(out) != 1 || len(out[0].idle) > rpcIdlePerPeer {
		t.Fatalf("a has %d connections; idle pool %d", len(out), len(out[0].idle))
	}
}

// TestCallReusesChannel: sequential calls use one RPC channel.
func TestCallReusesChannel(t *testing.T) {
	noLeaks(t)
	c := rpcCluster(t, func(context.Context, string, string, []byte) ([]byte, error) { return nil, nil }, "a", "b")
	a := c.nodes["a"].tr
	var first *chanConn
	for i := range 10 {
		if _, err := a.Call(context.Background(), c.addr("b"), "m", nil); err != nil {
			t.Fatal(err)
		}
		out, _ := sshConns(a)
		if len(out) != 1 || len(out[0].idle) != 1 {
			t.Fatalf("call %d: %d connections", i, len(out))
		}
		cc := <-out[0].idle
		if first == nil {
			first = cc
		} else if cc != first {
			t.Fatalf("call %d used a new channel", i)
		}
		out[0].idle <- cc
	}
}

// TestCallNoRetry: when the connection dies during a call, Call returns an
// error and does not send the request again.
func TestCallNoRetry(t *testing.T) {
	noLeaks(t)
	var calls atomic.Int32
	var b atomic.Pointer[Transport]
	c := rpcCluster(t, func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		if calls.Add(1) == 1 {
			_, in := sshConns(b.Load())
			for _, sc := range in {
				sc.conn.Close() // the connection dies while the request is handled
			}
		}
		return []byte("ok"), nil
	}, "a", "b")
	b.Store(c.nodes["b"].tr)
	_, err := c.nodes["a"].tr.Call(context.Background(), c.addr("b"), "write", nil)
	if err == nil {
		t.Fatal("Call succeeded though the connection died")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	// The next call redials.
	if _, err := c.nodes["a"].tr.Call(context.Background(), c.addr("b"), "write", nil); err != nil {
		t.Fatalf("next Call: %v", err)
	}
}

func TestCallLargeMessages(t *testing.T) {
	noLeaks(t)
	c := rpcCluster(t, func(_ context.Context, _, method string, req []byte) ([]byte, error) {
		if method == "huge" {
			return make([]byte, MaxMessageSize+1), nil
		}
		out := bytes.Clone(req)
		for i := range out {
			out[i] ^= 0xff
		}
		return out, nil
	}, "a", "b")
	a := c.nodes["a"].tr
	req := payload(8<<20+3, 9)
	resp, err := a.Call(context.Background(), c.addr("b"), "invert", req)
	if err != nil {
		t.Fatal(err)
	}
	for i := range req {
		if resp[i] != req[i]^0xff {
			t.Fatalf("byte %d differs", i)
		}
	}
	_, err = a.Call(context.Background(), c.addr("b"), "invert", make([]byte, MaxMessageSize+1))
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized request: %v", err)
	}
	_, err = a.Call(context.Background(), c.addr("b"), strings.Repeat("m", MaxMethodLen+1), nil)
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized method: %v", err)
	}
	var re *RemoteError
	_, err = a.Call(context.Background(), c.addr("b"), "huge", nil)
	if !errors.As(err, &re) || !strings.Contains(re.Message, "too large") {
		t.Fatalf("oversized response: %v", err)
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	if err := writeRequest(&b, 1500*time.Millisecond, "method", []byte("body")); err != nil {
		t.Fatal(err)
	}
	m, timeout, body, err := readRequest(&b)
	if err != nil || m != "method" || timeout != 1500*time.Millisecond || string(body) != "body" {
		t.Fatalf("readRequest = %q %v %q %v", m, timeout, body, err)
	}
	if _, _, _, err := readRequest(&b); err != io.EOF {
		t.Fatalf("readRequest at a frame boundary: %v, want io.EOF", err)
	}
	// A truncated frame is an unexpected EOF.
	writeRequest(&b, 0, "m", []byte("body"))
	b.Truncate(b.Len() - 1)
	if _, _, _, err := readRequest(&b); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated request: %v", err)
	}
	// Sizes beyond the limits are refused before anything is allocated.
	var h [reqHeaderLen]byte
	binary.BigEndian.PutUint32(h[:], MaxMessageSize+1)
	if _, _, _, err := readRequest(bytes.NewReader(h[:])); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized request header: %v", err)
	}
	binary.BigEndian.PutUint32(h[:], 0)
	binary.BigEndian.PutUint16(h[12:], MaxMethodLen+1)
	if _, _, _, err := readRequest(bytes.NewReader(h[:])); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized method header: %v", err)
	}
	var rh [respHeaderLen]byte
	binary.BigEndian.PutUint32(rh[:], MaxMessageSize+1)
	if _, _, err := readResponse(bytes.NewReader(rh[:])); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized response header: %v", err)
	}
	rh = [respHeaderLen]byte{0, 0, 0, 0, 7}
	if _, _, err := readResponse(bytes.NewReader(rh[:])); !errors.Is(err, ErrProtocol) {
		t.Fatalf("bad status: %v", err)
	}
	// A large body announced but not sent: an error, with memory growing only
	// with what arrives.
	binary.BigEndian.PutUint32(rh[:], MaxMessageSize)
	rh[4] = statusOK
	if _, _, err := readResponse(io.MultiReader(bytes.NewReader(rh[:]), bytes.NewReader(make([]byte, 100)))); err != io.ErrUnexpectedEOF {
		t.Fatalf("short large response: %v", err)
	}
}

// FuzzReadRequest feeds arbitrary bytes to the request decoder: it must
// return an error or a frame that encodes back to the same bytes.
func FuzzReadRequest(f *testing.F) {
	var b bytes.Buffer
	writeRequest(&b, time.Second, "join", []byte("payload"))
	f.Add(b.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		m, timeout, body, err := readRequest(r)
		if err != nil {
			return
		}
		var out bytes.Buffer
		writeRequest(&out, timeout, m, body)
		consumed := data[:len(data)-r.Len()]
		// Timeouts of 2^63 ns and more are read as the largest Duration.
		if binary.BigEndian.Uint64(consumed[4:]) < 1<<63 && !bytes.Equal(out.Bytes(), consumed) {
			t.Fatalf("re-encoding differs:\n%x\n%x", out.Bytes(), consumed)
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	var b bytes.Buffer
	writeResponse(&b, statusError, []byte("raftkv: not leader"))
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 1, 0, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		body, status, err := readResponse(r)
		if err != nil {
			return
		}
		var out bytes.Buffer
		writeResponse(&out, status, body)
		if !bytes.Equal(out.Bytes(), data[:len(data)-r.Len()]) {
			t.Fatal("re-encoding differs")
		}
	})
}
