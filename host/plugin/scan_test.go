package plugin_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestScanEncodesOnlyWhatFits: state_scan reports the size of the whole
// answer (ABI.md section 2) but encodes it only into a guest buffer that
// holds it, so a scan of many large values into a small buffer costs the
// host no memory, and an answer that fits is the same Record array as
// before, byte for byte.
func TestScanEncodesOnlyWhatFits(t *testing.T) {
	r := newRuntime(t, 60*time.Second)
	ctx := context.Background()
	opts := testOpts // the fill entries write up to 48 MiB
	opts.Limits.MaxWriteBytes, opts.Limits.ApplyFuel = 64<<20, plugin.MaxFuel
	m, err := r.Load(ctx, wasmbuild.Build(t, "./testdata/scanner"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	in, err := r.Instantiate(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	s := state.New()
	ns := s.Namespace("test")
	fill := func(index uint64, count, size int) {
		t.Helper()
		var res []abi.Result
		s.Update(func() { res, err = in.Apply(ctx, ns, batch(index, fmt.Sprintf("fill %d %d", count, size))) })
		if err != nil || len(res) != 1 || !res[0].OK() {
			t.Fatalf("fill: %v %v", res, err)
		}
	}
	// scan returns n and the answer's bytes, if they were copied.
	scan := func(limit, bufcap int) (int64, []byte) {
		t.Helper()
		view, _ := s.View().Namespace("test")
		q, err := in.Query(ctx, view, fmt.Appendf(nil, "scan %d %d", limit, bufcap))
		if err != nil || !q.OK() || len(q.Data) < 8 {
			t.Fatalf("scan: %v %q %v", q.Code, q.Data, err)
		}
		return int64(binary.LittleEndian.Uint64(q.Data)), q.Data[8:]
	}
	// want is the reference encoding of the first limit records.
	want := func(limit int) []byte {
		view, _ := s.View().Namespace("test")
		var recs [][3]any
		view.Scan(nil, nil, limit, func(k, v []byte, ver uint64) bool {
			recs = append(recs, [3]any{bytes.Clone(k), bytes.Clone(v), ver})
			return true
		})
		var b bytes.Buffer
		enc := msgpack.NewEncoder(&b)
		enc.EncodeArrayLen(len(recs))
		for _, r := range recs {
			enc.EncodeArrayLen(3)
			enc.EncodeBytes(r[0].([]byte))
			enc.EncodeBytes(r[1].([]byte))
			enc.EncodeUint(r[2].(uint64))
		}
		return b.Bytes()
	}

	fill(1, 20, 300) // bin16 values, fixarray and array16 headers
	fill(2, 1, 0)    // k00000 gets an empty value
	for _, limit := range []int{1, 2, 15, 16, 20, abi.MaxScanLimit} {
		ref := want(limit)
		n, got := scan(limit, len(ref))
		if n != int64(len(ref)) || !bytes.Equal(got, ref) {
			t.Fatalf("limit %d: n = %d, %d bytes; want the %d-byte reference", limit, n, len(got), len(ref))
		}
		if n, got := scan(limit, len(ref)-1); n != int64(len(ref)) || len(got) != 0 {
			t.Fatalf("limit %d, one byte short: n = %d, %d bytes copied", limit, n, len(got))
		}
	}

	// Hostile: 48 values of 1 MiB, scanned into 16 bytes.
	fill(3, 48, abi.MaxValueSize)
	ref := int64(len(want(abi.MaxScanLimit)))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, got := scan(abi.MaxScanLimit, 16)
	runtime.ReadMemStats(&after)
	if n != ref || len(got) != 0 {
		t.Fatalf("large scan: n = %d, %d bytes copied; want n = %d, none", n, len(got), ref)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("a scan answering %d bytes into a 16-byte buffer allocated %d bytes on the host", n, alloc)
	}
}
