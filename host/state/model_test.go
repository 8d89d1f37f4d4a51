package state

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is the reference: a plain map, sorted on demand.
type model map[string]entry

type entry struct {
	value   string
	version uint64
}

type record struct {
	key, value string
	version    uint64
}

func (m model) scan(start, end []byte, limit int) []record {
	keys := slices.Sorted(maps.Keys(m))
	var out []record
	for _, k := range keys {
		if k < string(start) || (len(end) > 0 && k >= string(end)) {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, record{k, m[k].value, m[k].version})
	}
	return out
}

type reader interface {
	Get(key []byte) ([]byte, uint64, bool)
	Scan(start, end []byte, limit int, fn func(key, value []byte, version uint64) bool)
	Len() int
}

func scanAll(r reader, start, end []byte, limit int) []record {
	var out []record
	r.Scan(start, end, limit, func(k, v []byte, ver uint64) bool {
		out = append(out, record{string(k), string(v), ver})
		return true
	})
	return out
}

// checkSame compares every observable of r with m.
func checkSame(t *testing.T, what string, r reader, m model) {
	t.Helper()
	if r.Len() != len(m) {
		t.Fatalf("%s: Len = %d, model %d", what, r.Len(), len(m))
	}
	got, want := scanAll(r, nil, nil, 0), m.scan(nil, nil, 0)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: full scan\n got %v\nwant %v", what, got, want)
	}
	var size int64
	for k, e := range m {
		v, ver, ok := r.Get([]byte(k))
		if !ok || string(v) != e.value || ver != e.version {
			t.Fatalf("%s: Get(%q) = %q, %d, %v; want %q, %d", what, k, v, ver, ok, e.value, e.version)
		}
		size += int64(len(k) + len(e.value))
	}
	// The write side counts the bytes it holds (the plugin quotas read it),
	// through sets, replacements, deletes and rollbacks.
	if ns, ok := r.(*Namespace); ok && ns.Bytes() != size {
		t.Fatalf("%s: Bytes = %d, model %d", what, ns.Bytes(), size)
	}
}

// randKey draws from a small alphabet, including 0x00 and 0xff and the empty
// key, so that keys collide, share prefixes and sort as unsigned bytes.
func randKey(rng *rand.Rand) []byte {
	const alphabet = "\x00\x01ab\x7f\x80\xfe\xff"
	k := make([]byte, rng.IntN(4))
	for i := range k {
		k[i] = alphabet[rng.IntN(len(alphabet))]
	}
	// Long shared prefixes around the 6-byte inline prefix, so that ties
	// are decided by the full keys.
	if rng.IntN(3) == 0 {
		common := "ab\x00\xffab\x00\xffab\x01"
		k = append([]byte(common[:6+rng.IntN(5)]), k...)
	}
	return k
}

func randValue(rng *rand.Rand) []byte {
	if rng.IntN(8) == 0 {
		return nil
	}
	v := make([]byte, rng.IntN(40))
	for i := range v {
		v[i] = byte(rng.UintN(256))
	}
	return v
}

func TestModel(t *testing.T) {
	steps := 12000
	if testing.Short() {
		steps = 3000
	}
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			runModel(t, seed, steps)
		})
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 42))
	s := New()
	names := []string{"a", "b", "\x00bin\xff"}
	models := map[string]model{}
	saved := map[string]model{} // model state at Begin, for Rollback
	type frozen struct {
		v      *View
		models map[string]model
	}
	var views []frozen
	version := uint64(0)

	clone := func(m model) model { return maps.Clone(m) }
	for step := 0; step < steps; step++ {
		name := names[rng.IntN(len(names))]
		s.Update(func() {
			ns := s.Namespace(name)
			m := models[name]
			if m == nil {
				m = model{}
				models[name] = m
			}
			what := fmt.Sprintf("seed %d step %d ns %q", seed, step, name)
			switch op := rng.IntN(100); {
			case op < 40:
				k, v := randKey(rng), randValue(rng)
				if len(k) == 0 { // Set refuses an empty key; reads and deletes probe it
					k = []byte{0}
				}
				version++
				ns.Set(k, v, version)
				m[string(k)] = entry{string(v), version}
			case op < 55:
				k := randKey(rng)
				_, want := m[string(k)]
				if got := ns.Delete(k); got != want {
					t.Fatalf("%s: Delete(%q) = %v, want %v", what, k, got, want)
				}
				delete(m, string(k))
			case op < 70:
				start, end := randKey(rng), randKey(rng)
				if rng.IntN(4) == 0 {
					end = nil
				}
				if rng.IntN(6) == 0 {
					start = nil
				}
				limit := rng.IntN(6) - 1
				got, want := scanAll(ns, start, end, limit), m.scan(start, end, limit)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: Scan(%q, %q, %d)\n got %v\nwant %v", what, start, end, limit, got, want)
				}
				// Early stop after two records.
				var n int
				ns.Scan(start, end, limit, func(k, v []byte, ver uint64) bool { n++; return n < 2 })
				if n != min(2, len(want)) {
					t.Fatalf("%s: early-stopped scan visited %d, want %d", what, n, min(2, len(want)))
				}
			case op < 78:
				k := randKey(rng)
				v, ver, ok := ns.Get(k)
				e, want := m[string(k)]
				if ok != want || string(v) != e.value || ver != e.version {
					t.Fatalf("%s: Get(%q) = %q %d %v, want %q %d %v", what, k, v, ver, ok, e.value, e.version, want)
				}
			case op < 86:
				if !ns.InCommand() {
					ns.Begin()
					saved[name] = clone(m)
				}
			case op < 92:
				if ns.InCommand() {
					ns.Commit()
					delete(saved, name)
				}
			case op < 98:
				if ns.InCommand() {
					ns.Rollback()
					models[name] = saved[name]
					delete(saved, name)
				}
			default:
				checkSame(t, what, ns, m)
			}
		})
		if rng.IntN(500) == 0 {
			f := frozen{v: s.View(), models: map[string]model{}}
			for n, m := range models {
				f.models[n] = clone(m)
			}
			views = append(views, f)
		}
	}
	for name, m := range models {
		ns, ok := s.Lookup(name)
		if !ok {
			t.Fatalf("namespace %q missing", name)
		}
		checkSame(t, "final "+name, ns, m)
		nv, _ := s.View().Namespace(name)
		checkSame(t, "final view "+name, nv, m)
	}
	// Views taken along the way still show what they showed then.
	for i, f := range views {
		for name, m := range f.models {
			nv, ok := f.v.Namespace(name)
			if !ok {
				t.Fatalf("view %d: namespace %q missing", i, name)
			}
			checkSame(t, fmt.Sprintf("view %d %q", i, name), nv, m)
		}
	}
}

// TestRollbackRestoresVersions checks the exact undo semantics on a small case.
func TestRollbackRestoresVersions(t *testing.T) {
	s := New()
	s.Update(func() {
		ns := s.Namespace("n")
		ns.Set([]byte("a"), []byte("1"), 1)
		ns.Set([]byte("b"), []byte("2"), 2)
		ns.Begin()
		ns.Set([]byte("a"), []byte("x"), 3) // replace
		ns.Set([]byte("c"), []byte("y"), 3) // insert
		ns.Set([]byte("c"), []byte("z"), 4) // replace own insert
		if !ns.Delete([]byte("b")) {        // delete old
			t.Fatal("Delete(b) = false")
		}
		ns.Set([]byte("b"), []byte("w"), 4) // re-insert
		if v, ver, _ := ns.Get([]byte("c")); string(v) != "z" || ver != 4 {
			t.Fatalf("own write not visible: %q %d", v, ver)
		}
		ns.Rollback()
		want := []record{{"a", "1", 1}, {"b", "2", 2}}
		if got := scanAll(ns, nil, nil, 0); !slices.Equal(got, want) {
			t.Fatalf("after Rollback: %v, want %v", got, want)
		}
		ns.Begin()
		ns.Set([]byte("d"), nil, 5)
		ns.Commit()
		ns.Rollback() // no command open: no-op
		if _, ver, ok := ns.Get([]byte("d")); !ok || ver != 5 {
			t.Fatal("committed write lost")
		}
	})
}

func TestBeginTwicePanics(t *testing.T) {
	s := New()
	s.Update(func() {
		ns := s.Namespace("n")
		ns.Begin()
		defer func() {
			if recover() == nil {
				t.Fatal("second Begin did not panic")
			}
		}()
		ns.Begin()
	})
}

func TestSetLimits(t *testing.T) {
	s := New()
	s.Update(func() {
		ns := s.Namespace("n")
		ns.Set(bytes.Repeat([]byte{1}, 4<<10), bytes.Repeat([]byte{2}, 1<<20), 1) // at the limits: fine
		for _, c := range []struct{ k, v int }{{4<<10 + 1, 0}, {1, 1<<20 + 1}} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("Set(%d-byte key, %d-byte value) did not panic", c.k, c.v)
					}
				}()
				ns.Set(make([]byte, c.k), make([]byte, c.v), 2)
			}()
		}
	})
}

func TestNamespaces(t *testing.T) {
	s := New()
	a := s.Namespace("b")
	if s.Namespace("b") != a {
		t.Fatal("Namespace did not return the existing namespace")
	}
	s.Update(func() {
		s.Namespace("a").Set([]byte("k"), []byte("v"), 1)
		a.Set([]byte("k"), []byte("v"), 1)
		s.Namespace("c")
	})
	if got := s.Names(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Names = %q", got)
	}
	v := s.View()
	s.Drop("b")
	s.Drop("nope")
	if _, ok := s.Lookup("b"); ok {
		t.Fatal("dropped namespace still there")
	}
	if got := s.View().Names(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("View.Names after Drop = %q", got)
	}
	if nv, ok := v.Namespace("b"); !ok || nv.Len() != 1 {
		t.Fatal("older view lost the dropped namespace")
	}
	if s.Namespace("b").Len() != 0 {
		t.Fatal("re-created namespace is not empty")
	}
	for _, bad := range []string{"", string(make([]byte, MaxNameSize+1))} {
		if ValidName(bad) == nil {
			t.Errorf("ValidName(%d bytes) = nil", len(bad))
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Namespace(%d bytes) did not panic", len(bad))
				}
			}()
			s.Namespace(bad)
		}()
	}
}

func TestValueNotAliased(t *testing.T) {
	s := New()
	k, v := []byte("key"), []byte("value")
	s.Update(func() {
		ns := s.Namespace("n")
		ns.Set(k, v, 1)
		k[0], v[0] = 'X', 'X'
		got, _, ok := ns.Get([]byte("key"))
		if !ok || string(got) != "value" {
			t.Fatalf("Set did not copy: %q %v", got, ok)
		}
		if cap(got) != len(got) {
			t.Fatalf("value capacity %d > length %d: an append could overwrite", cap(got), len(got))
		}
		ns.Set([]byte("e"), nil, 2)
		got, _, ok = ns.Get([]byte("e"))
		if !ok || len(got) != 0 {
			t.Fatalf("empty value: %q %v", got, ok)
		}
	})
}
