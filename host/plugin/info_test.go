package plugin_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestSDKPluginWithoutDescriber: sdk.Describer is optional, so a plugin
// without it loads with an empty Info, applies and answers queries.
func TestSDKPluginWithoutDescriber(t *testing.T) {
	r := newRuntime(t, 5*time.Second)
	ctx := context.Background()
	m, err := r.Load(ctx, wasmbuild.Build(t, "./testdata/nodescriber"), testOpts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	if m.Info != (abi.Info{}) {
		t.Fatalf("Info = %+v, want empty", m.Info)
	}
	in, err := r.Instantiate(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	// The SDK itself reports success, not not_found (which the host tolerates).
	// (It says it has no migration: "migrate": false, since the SDK knows.)
	if info, err := in.Info(ctx); err != nil || info.Name != "" || info.Version != "" || info.Description != "" || info.Migrate == nil || *info.Migrate {
		t.Fatalf("Info() = %+v, %v; want no name, version or description, and migrate false", info, err)
	}
	s := state.New()
	ns := s.Namespace("test")
	var res []abi.Result
	s.Update(func() { res, err = in.Apply(ctx, ns, batch(1, "a", "b")) })
	if err != nil || len(res) != 2 || !res[1].OK() || !bytes.Equal(res[1].Data, mp.AppendUint(nil, 2)) {
		t.Fatalf("Apply = %v, %v", res, err)
	}
	view, _ := s.View().Namespace("test")
	if q, err := in.Query(ctx, view, nil); err != nil || !q.OK() || !bytes.Equal(q.Data, mp.AppendUint(nil, 2)) {
		t.Fatalf("Query = %v %q, %v", q.Code, q.Data, err)
	}
}

// TestSDKPluginUnregistered: a module that never calls sdk.Register is
// refused at load time with the SDK's explanation, rather than loading and
// failing every command.
func TestSDKPluginUnregistered(t *testing.T) {
	r := newRuntime(t, 5*time.Second)
	_, err := r.Load(context.Background(), wasmbuild.Build(t, "./testdata/unregistered"), testOpts)
	if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), "sdk.Register") {
		t.Fatalf("Load: %v, want ErrInvalidModule naming sdk.Register", err)
	}
}

// TestInfoResults: what raftkv_info may report (ABI.md section 1). An empty
// map and not_found mean "no info"; any other error, or a payload that is not
// an Info map, refuses the module with the plugin's message.
func TestInfoResults(t *testing.T) {
	r := newRuntime(t, 5*time.Second)
	ctx := context.Background()
	for _, c := range []struct {
		name, code, payload string
		want                abi.Info // when ok
		refused             string   // part of the refusal, or "" when it loads
	}{
		{name: "empty map", code: "0", payload: "80"},
		{name: "name only", code: "0", payload: "81a46e616d65a178", want: abi.Info{Name: "x"}}, // {"name":"x"}
		{name: "not found", code: "2", payload: hexOf("no sdk.Describer")},
		{name: "internal", code: "5", payload: hexOf("broken info"), refused: "broken info"},
		{name: "no payload", code: "0", payload: "", refused: "not a MsgPack Info map"},
		{name: "not a map", code: "0", payload: "a3616263", refused: "not a MsgPack Info map"}, // "abc"
		// The payload is a guest's bytes: it goes through the validating
		// decoder (abi.Unmarshal), as every decode of outside bytes does.
		{name: "trailing bytes", code: "0", payload: "80c0", refused: "trailing bytes"},
		{name: "nested too deep", code: "0", payload: "81a178" + strings.Repeat("91", 80) + "c0", refused: "deep"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wasm := wasmbuild.Build(t, "./testdata/info", "-X main.code="+c.code, "-X main.payload="+c.payload)
			m, err := r.Load(ctx, wasm, testOpts)
			if c.refused != "" {
				if err == nil {
					m.Close(ctx)
					t.Fatalf("Load succeeded, want a refusal with %q", c.refused)
				}
				if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("Load: %v, want ErrInvalidModule with %q", err, c.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			defer m.Close(ctx)
			if m.Info != c.want {
				t.Fatalf("Info = %+v, want %+v", m.Info, c.want)
			}
		})
	}
}

func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }
