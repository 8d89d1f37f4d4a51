package sdk_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// has reports whether st holds key.
func has(st sdk.State, key []byte) bool {
	_, _, ok := st.Get(key)
	return ok
}

// scanLimits is a State that records the limit of every Scan.
type scanLimits struct {
	*sdk.MemState
	limits []int
}

func (s *scanLimits) Scan(start, end []byte, limit int) ([]abi.Record, error) {
	s.limits = append(s.limits, limit)
	return s.MemState.Scan(start, end, limit)
}

// aliasKey decodes a key without copying it, as a KeyCodec may.
type aliasKey struct{}

func (aliasKey) AppendKey(dst []byte, k []byte) []byte { return append(dst, k...) }
func (aliasKey) DecodeKey(b []byte) ([]byte, error)    { return b, nil }

// First and PopFirst ask the host for one record, and hand out copies
// (even through a KeyCodec that does not copy); PopFirst removes what it
// returns; an empty Map answers ok false.
func TestMapFirstAndPopFirst(t *testing.T) {
	mem := sdk.NewMemState()
	mem.SetIndex(1)
	st := &scanLimits{MemState: mem}
	m := sdk.NewMap[[]byte, []byte]("m/", aliasKey{})
	if _, _, ok, err := m.First(st); ok || err != nil {
		t.Fatalf("First of an empty Map: ok %v, %v", ok, err)
	}
	for _, k := range []string{"c", "a", "b"} {
		m.Save(st, []byte(k), []byte("value "+k))
	}
	st.Set([]byte("l"), []byte("before the prefix"))
	st.Set([]byte("m0"), []byte("after it"))
	st.limits = nil
	k, v, ok, err := m.First(st)
	if !ok || err != nil || string(k) != "a" || string(v) != "value a" || !slices.Equal(st.limits, []int{1}) {
		t.Fatalf("First = %q %q %v %v, scans %v", k, v, ok, err, st.limits)
	}
	st.Scan(m.Key([]byte("c")), nil, 1) // overwrites the answer buffer in place
	if string(k) != "a" || string(v) != "value a" {
		t.Fatalf("First's key and value changed with the next State call: %q %q", k, v)
	}
	var popped []string
	for {
		k, v, ok, err := m.PopFirst(st)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		popped = append(popped, string(k)+"="+string(v))
	}
	if !slices.Equal(popped, []string{"a=value a", "b=value b", "c=value c"}) {
		t.Errorf("PopFirst until empty: %q", popped)
	}
	if n, err := m.Count(st); n != 0 || err != nil || !has(mem, []byte("l")) || !has(mem, []byte("m0")) {
		t.Errorf("after popping everything: %d left, %v; keys outside the prefix kept: %v %v", n, err, has(mem, []byte("l")), has(mem, []byte("m0")))
	}
	st.Set(m.Key([]byte("x")), []byte{0xc1})
	if _, _, ok, err := m.PopFirst(st); ok || !errors.Is(err, &abi.Error{Code: abi.CodeInternal}) || !has(mem, m.Key([]byte("x"))) {
		t.Errorf("PopFirst of a value that does not decode: ok %v, %v, and it must stay", ok, err)
	}
}

// Count counts without decoding values, over several pages.
func TestMapCount(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	m := sdk.NewMap[uint64, string]("m/", sdk.Uint64Key)
	const n = 2*sdk.ScanPage + 3
	for i := range uint64(n) {
		m.Save(st, i, "v")
	}
	st.Set(m.Key(7), []byte{0xc1}) // not a string: Count does not care
	st.Set([]byte("m0"), []byte("outside"))
	if got, err := m.Count(st); got != n || err != nil {
		t.Errorf("Count = %d, %v; want %d", got, err, n)
	}
}

// After continues a listing after a key; Collect takes a page of it and
// says whether more follow.
func TestMapAfterAndCollect(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	m := sdk.NewMap[string, int]("m/", sdk.StringKey)
	for i, k := range []string{"a", "b", "b\x00", "c", "d"} {
		m.Save(st, k, i)
	}
	var err error
	keys, values, more := sdk.Collect(m.After(st, "b", &err), 2)
	if err != nil || !slices.Equal(keys, []string{"b\x00", "c"}) || !slices.Equal(values, []int{2, 3}) || !more {
		t.Errorf("Collect(After(b), 2) = %q %v %v, %v", keys, values, more, err)
	}
	keys, _, more = sdk.Collect(m.After(st, keys[len(keys)-1], &err), 2)
	if !slices.Equal(keys, []string{"d"}) || more {
		t.Errorf("the next page: %q, more %v", keys, more)
	}
	keys, values, more = sdk.Collect(m.After(st, "d", &err), 2)
	if keys == nil || values == nil || len(keys) != 0 || more {
		t.Errorf("past the end: %#v %#v %v (want empty, not nil, slices)", keys, values, more)
	}
	if keys, _, more := sdk.Collect(m.All(st, &err), 0); len(keys) != 5 || more {
		t.Errorf("Collect(All, 0) = %q, %v: want all", keys, more)
	}
}

// List, as a Router's query, walks a Map in pages: "after" continues where
// "next" said, the last page has no "next", the default limit is
// DefaultPageLimit, and a limit out of range is a bad request.
func TestMapList(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	m := sdk.NewMap[uint64, string]("m/", sdk.Uint64Key)
	for i := uint64(1); i <= 250; i++ {
		m.Save(st, i, fmt.Sprint("v", i))
	}
	r := sdk.NewRouter(abi.Info{Name: "t", Version: "1.0.0"})
	sdk.Query(r, "list", m.List)
	list := func(q map[string]any) (p sdk.Page[uint64, string], raw map[string]any, err error) {
		q["op"] = "list"
		b, err := r.Query(st, mustMarshal(t, q))
		if err == nil {
			err = errors.Join(sdk.Unmarshal(b, &p), sdk.Unmarshal(b, &raw))
		}
		return p, raw, err
	}
	var got []string
	q := map[string]any{"limit": 100}
	for pages := 1; ; pages++ {
		p, raw, err := list(q)
		if err != nil || pages > 3 {
			t.Fatalf("page %d: %+v, %v", pages, p, err)
		}
		got = append(got, p.Items...)
		if p.Next == nil {
			if _, ok := raw["next"]; ok || pages != 3 || len(p.Items) != 50 {
				t.Errorf("the last page, %d: %d items, %v", pages, len(p.Items), raw)
			}
			break
		}
		q = map[string]any{"after": *p.Next}
	}
	if len(got) != 250 || got[0] != "v1" || got[249] != "v250" {
		t.Errorf("listed %d: %q … %q", len(got), got[0], got[len(got)-1])
	}
	if p, _, err := list(map[string]any{"after": 249}); err != nil || !slices.Equal(p.Items, []string{"v250"}) || p.Next != nil {
		t.Errorf("after 249: %+v, %v", p, err)
	}
	if p, raw, err := list(map[string]any{"after": 250}); err != nil || p.Items == nil || len(p.Items) != 0 || raw["items"] == nil {
		t.Errorf("past the end: %#v %v, %v (want an empty list, not nil)", p, raw, err)
	}
	for _, limit := range []int{-1, sdk.MaxPageLimit + 1} {
		if _, _, err := list(map[string]any{"limit": limit}); !errors.Is(err, &abi.Error{Code: abi.CodeBadRequest}) {
			t.Errorf("limit %d: %v, want bad_request", limit, err)
		}
	}
}

// MoveTo moves a Map's entries, as stored, under another prefix; a value
// that does not decode fails it, and MemState.Migrate then undoes it all.
func TestMapMoveTo(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	from := sdk.NewMap[uint64, string]("old/", sdk.Uint64Key)
	to := sdk.NewMap[uint64, string]("new/", sdk.Uint64Key)
	const n = sdk.ScanPage + 5
	for i := range uint64(n) {
		from.Save(st, i, fmt.Sprint("v", i))
	}
	to.Save(st, 1000, "already there")
	router := sdk.NewRouter(abi.Info{Name: "m", Version: "2.0.0"})
	p := router.WithMigration(func(st sdk.State, _ abi.Migration) error { return from.MoveTo(st, to) })
	if r := st.Migrate(p, abi.Migration{FromVersion: "1.0.0", Index: 2}); !r.OK() {
		t.Fatal(r.Err())
	}
	var err error
	keys, values, _ := sdk.Collect(to.All(st, &err), 0)
	if c, _ := from.Count(st); c != 0 || err != nil || len(keys) != n+1 || values[n-1] != fmt.Sprint("v", n-1) || values[n] != "already there" {
		t.Fatalf("after MoveTo: %d left, %d moved, %v", c, len(keys), err)
	}

	// A stored value that is not a V refuses the migration, which leaves
	// the state as it was.
	if err := to.MoveTo(st, from); err != nil { // (outside an entry: MemState applies it at once)
		t.Fatal(err)
	}
	st.Set(from.Key(3), []byte{0xc1})
	before := st.Dump()
	r := st.Migrate(p, abi.Migration{FromVersion: "1.0.0", Index: 3})
	if r.Code != abi.CodeInternal || !slices.EqualFunc(before, st.Dump(), func(a, b abi.Record) bool { return string(a.Key) == string(b.Key) && a.Version == b.Version }) {
		t.Errorf("MoveTo over a bad value: %v, state changed: %v", r.Err(), len(st.Dump()) != len(before))
	}

	// Overlapping prefixes would move entries into the range being moved.
	inner := sdk.NewMap[uint64, string]("old/x", sdk.Uint64Key)
	for _, c := range [][2]sdk.Map[uint64, string]{{from, inner}, {inner, from}, {from, from}} {
		if err := c[0].MoveTo(st, c[1]); !errors.Is(err, &abi.Error{Code: abi.CodeInternal}) {
			t.Errorf("MoveTo between overlapping prefixes: %v", err)
		}
	}
}

// Ensure is nil when its condition holds, without formatting its message,
// and a bad_request with it otherwise.
func TestEnsure(t *testing.T) {
	var f formatCount
	if err := sdk.Ensure(true, "%v", &f); err != nil || f != 0 {
		t.Errorf("Ensure(true) = %v, message formatted %d times", err, f)
	}
	err := sdk.Ensure(false, "n must be 1 to %d, not %d", 10, 11)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Code != abi.CodeBadRequest || ae.Message != "n must be 1 to 10, not 11" {
		t.Errorf("Ensure(false) = %#v", err)
	}
}

// formatCount counts its formatting.
type formatCount int

func (f *formatCount) String() string { *f++; return "x" }

// A Router is not a Migrator; WithMigration makes one that keeps the
// Router's Info, validation and handlers (registered before or after).
func TestWithMigration(t *testing.T) {
	r := counterRouter()
	if _, ok := any(r).(sdk.Migrator); ok {
		t.Fatal("a Router is a Migrator: every Router plugin would report has_migrate")
	}
	ran := 0
	p := r.WithMigration(func(st sdk.State, m abi.Migration) error {
		ran++
		if m.FromVersion != "0.9.0" {
			return sdk.Conflict("cannot migrate from %s", m.FromVersion)
		}
		return st.Set([]byte("migrated"), []byte{1})
	})
	sdk.Query(r, "late", func(sdk.State, struct{}) (int, error) { return 7, nil })
	d, isD := p.(sdk.Describer)
	v, isV := p.(sdk.Validator)
	if _, isM := p.(sdk.Migrator); !isM || !isD || !isV || d.Info().Name != "counter" {
		t.Fatalf("WithMigration: Migrator, Describer, Validator = %v %v %v", isM, isD, isV)
	}
	if err := v.ValidateCommand(mustMarshal(t, map[string]any{"op": "nope"})); !errors.Is(err, &abi.Error{Code: abi.CodeBadRequest}) {
		t.Errorf("ValidateCommand of an unknown op: %v", err)
	}
	st := sdk.NewMemState()
	if r := st.Migrate(p, abi.Migration{FromVersion: "0.1.0", Index: 1}); r.Code != abi.CodeConflict || has(st, []byte("migrated")) {
		t.Errorf("a refused migration: %v", r.Err())
	}
	if r := st.Migrate(p, abi.Migration{FromVersion: "0.9.0", Index: 2}); !r.OK() || !has(st, []byte("migrated")) || ran != 2 {
		t.Errorf("migration: %v, ran %d times", r.Err(), ran)
	}
	if res := st.Apply(p, abi.Entry{Index: 3, Data: mustMarshal(t, map[string]any{"op": "add", "name": "x", "n": 2})}); !res[0].OK() {
		t.Errorf("a command through WithMigration: %v", res[0].Err())
	}
	if res := st.Query(p, mustMarshal(t, map[string]any{"op": "late"})); !res.OK() || res.Data[0] != 7 {
		t.Errorf("a handler registered after WithMigration: %v", res.Err())
	}
}
