package abi_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/abi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldens are the reference encodings of the ABI's messages. A change to any
// of them is a change to the ABI and needs a new version.
var goldens = []struct {
	name string
	v    any
	new  func() any
}{
	{"batch", abi.Batch{
		{Index: 1, Term: 1, Time: 1700000000000000000, Data: []byte("hello")},
		{Index: 300, Term: 2, Time: -1, Data: []byte{}},
	}, func() any { return new(abi.Batch) }},
	{"records", []abi.Record{
		{Key: []byte("a"), Value: []byte("1"), Version: 7},
		{Key: []byte{0, 0xff}, Value: nil, Version: 1 << 40},
	}, func() any { return new([]abi.Record) }},
	{"migration", abi.Migration{FromHash: "ab12", FromVersion: "1.0.0", Index: 42}, func() any { return new(abi.Migration) }},
	{"info", abi.Info{Name: "kv", Version: "1.0.0", Description: "key-value store"}, func() any { return new(abi.Info) }},
	{"result", abi.Result{Code: abi.CodeConflict, Data: []byte("version mismatch")}, func() any { return new(abi.Result) }},
	{"result_out_of_fuel", abi.Result{Code: abi.CodeOutOfFuel, Data: []byte("out of fuel: the entry's budget is 20000000")}, func() any { return new(abi.Result) }},
}

func TestGoldenEncodings(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			got, err := abi.Marshal(g.v)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", g.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./abi -update to create it)", err)
			}
			want, err := hex.DecodeString(strings.TrimSpace(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding changed\n got %x\nwant %x", got, want)
			}
			back := g.new()
			if err := abi.Unmarshal(want, back); err != nil {
				t.Fatal(err)
			}
			if v := reflect.ValueOf(back).Elem().Interface(); !reflect.DeepEqual(normalize(v), normalize(g.v)) {
				t.Fatalf("round trip: got %+v want %+v", v, g.v)
			}
		})
	}
}

// normalize maps empty byte slices to nil so that DeepEqual compares content.
func normalize(v any) any {
	switch x := v.(type) {
	case abi.Batch:
		out := make(abi.Batch, len(x))
		for i, e := range x {
			out[i] = abi.Entry{Index: e.Index, Term: e.Term, Time: e.Time, Data: bytes.Clone(e.Data)}
			if len(e.Data) == 0 {
				out[i].Data = nil
			}
		}
		return out
	case []abi.Record:
		out := make([]abi.Record, len(x))
		for i, r := range x {
			out[i] = abi.Record{Key: r.Key, Value: r.Value, Version: r.Version}
			if len(r.Value) == 0 {
				out[i].Value = nil
			}
		}
		return out
	}
	return v
}

func TestErrorIs(t *testing.T) {
	err := abi.Result{Code: abi.CodeNotFound, Data: []byte("key not found")}.Err()
	if !errors.Is(err, &abi.Error{Code: abi.CodeNotFound}) {
		t.Fatal("errors.Is by code failed")
	}
	if errors.Is(err, &abi.Error{Code: abi.CodeConflict}) {
		t.Fatal("errors.Is matched another code")
	}
	if (abi.Result{}).Err() != nil {
		t.Fatal("OK result has an error")
	}
	if got := abi.Code(77).String(); got != "plugin_77" {
		t.Fatal(got)
	}
}

// FuzzDecodeBatch: arbitrary bytes must decode or fail cleanly, never panic,
// and whatever decodes must re-encode to something that decodes the same.
func FuzzDecodeBatch(f *testing.F) {
	for _, g := range goldens {
		b, _ := abi.Marshal(g.v)
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // array32 claiming 4G entries
	f.Fuzz(func(t *testing.T, data []byte) {
		var b abi.Batch
		if err := abi.Unmarshal(data, &b); err != nil {
			return
		}
		again, err := abi.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var b2 abi.Batch
		if err := abi.Unmarshal(again, &b2); err != nil || !reflect.DeepEqual(normalize(b), normalize(b2)) {
			t.Fatalf("re-encoding changed the batch: %v", err)
		}
	})
}

func TestValidate(t *testing.T) {
	bad := map[string][]byte{
		"array32 claiming 4G":   {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 claiming 4G":     {0xdf, 0xff, 0xff, 0xff, 0xff},
		"bin32 claiming 4G":     {0xc6, 0xff, 0xff, 0xff, 0xff, 1},
		"truncated uint64":      {0xcf, 1, 2},
		"trailing bytes":        {0x01, 0x02},
		"empty":                 {},
		"invalid code":          {0xc1},
		"fixarray missing item": {0x92, 0x01},
		"too deep":              bytes.Repeat([]byte{0x91}, abi.MaxDepth+1),
	}
	for name, data := range bad {
		if err := abi.Validate(data); !errors.Is(err, abi.ErrMalformed) {
			t.Errorf("%s: Validate = %v, want ErrMalformed", name, err)
		}
		var v any
		if err := abi.Unmarshal(data, &v); err == nil {
			t.Errorf("%s: Unmarshal accepted it", name)
		}
	}
	deep := append(bytes.Repeat([]byte{0x91}, abi.MaxDepth-1), 0x01)
	if err := abi.Validate(deep); err != nil {
		t.Errorf("depth %d refused: %v", abi.MaxDepth, err)
	}
	for _, g := range goldens {
		b, _ := abi.Marshal(g.v)
		if err := abi.Validate(b); err != nil {
			t.Errorf("%s: %v", g.name, err)
		}
	}
}

// TestSpecVersion: ABI.md's title names the version and revision this
// package describes, and its list of exports names ExportInputBuffer with
// the revision that added it.
func TestSpecVersion(t *testing.T) {
	b, err := os.ReadFile("ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	title := fmt.Sprintf("# raftkv plugin ABI, version %d.%d\n", abi.Version, abi.Minor)
	if !strings.HasPrefix(doc, title) {
		t.Errorf("ABI.md does not start with %q", title)
	}
	row := fmt.Sprintf("| `%s` | `() -> (i64)` | no — added in ABI v%d.%d, backward compatible |", abi.ExportInputBuffer, abi.Version, abi.Minor)
	if !strings.Contains(doc, row) {
		t.Errorf("ABI.md does not list %q", row)
	}
}
