package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestViewImmutable(t *testing.T) {
	s := New()
	s.Update(func() {
		ns := s.Namespace("n")
		ns.Set([]byte("a"), []byte("1"), 1)
		ns.Set([]byte("b"), []byte("2"), 2)
	})
	v := s.View()
	if s.View() != v {
		t.Fatal("View not cached between Updates")
	}
	s.Update(func() {
		ns := s.Namespace("n")
		ns.Set([]byte("a"), []byte("changed"), 3)
		ns.Delete([]byte("b"))
		ns.Set([]byte("c"), []byte("3"), 3)
		s.Namespace("new").Set([]byte("x"), nil, 3)
	})
	nv, ok := v.Namespace("n")
	if !ok {
		t.Fatal("namespace missing from view")
	}
	checkSame(t, "old view", nv, model{"a": {"1", 1}, "b": {"2", 2}})
	if _, ok := v.Namespace("new"); ok {
		t.Fatal("namespace created after View shows in it")
	}
	v2 := s.View()
	if v2 == v {
		t.Fatal("View still cached after Update")
	}
	nv2, _ := v2.Namespace("n")
	checkSame(t, "new view", nv2, model{"a": {"changed", 3}, "c": {"3", 3}})

	// A namespace nobody wrote to keeps its NamespaceView (no re-clone).
	s.Update(func() { s.Namespace("new").Set([]byte("y"), nil, 4) })
	v3 := s.View()
	nv3, _ := v3.Namespace("n")
	if nv3 != nv2 {
		t.Fatal("unchanged namespace was cloned again")
	}
	if nvNew, _ := v3.Namespace("new"); nvNew.Len() != 2 {
		t.Fatalf("new namespace Len = %d, want 2", nvNew.Len())
	}
	// Writes inside a command that rolls back, and View during nothing.
	s.Update(func() {
		ns := s.Namespace("n")
		ns.Begin()
		ns.Set([]byte("zz"), nil, 5)
		ns.Rollback()
	})
	nv4, _ := s.View().Namespace("n")
	checkSame(t, "after rollback", nv4, model{"a": {"changed", 3}, "c": {"3", 3}})
}

// TestViewConcurrent runs a writer doing Updates while readers take views.
// Every Update rewrites all keys of both namespaces with the same version and
// value, in commands some of which roll back, so a consistent view has one
// version everywhere. Run with -race.
func TestViewConcurrent(t *testing.T) {
	const keys = 64
	updates := 2000
	if testing.Short() {
		updates = 300
	}
	s := New()
	var done atomic.Bool
	var wg sync.WaitGroup
	var checked atomic.Int64
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				if err := checkConsistent(s.View(), keys); err != nil {
					errs <- err
					return
				}
				checked.Add(1)
			}
		}()
	}
	val := make([]byte, 8)
	for i := 1; i <= updates; i++ {
		s.Update(func() {
			for _, name := range []string{"x", "y"} {
				ns := s.Namespace(name)
				ns.Begin()
				binary.BigEndian.PutUint64(val, uint64(i))
				for k := 0; k < keys; k++ {
					ns.Set([]byte(fmt.Sprintf("k%03d", k)), val, uint64(i))
				}
				if i%3 == 0 {
					ns.Set([]byte("zzz-temporary"), nil, uint64(i))
					ns.Rollback()
				} else {
					ns.Commit()
				}
			}
		})
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := checkConsistent(s.View(), keys); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d views checked during %d updates", checked.Load(), updates)
}

func checkConsistent(v *View, keys int) error {
	var want uint64
	first := true
	for _, name := range v.Names() {
		nv, _ := v.Namespace(name)
		if nv.Len() != keys {
			return fmt.Errorf("namespace %q: Len %d, want %d", name, nv.Len(), keys)
		}
		n := 0
		var err error
		nv.Scan(nil, nil, 0, func(k, val []byte, ver uint64) bool {
			if first {
				want, first = ver, false
			}
			if ver != want || binary.BigEndian.Uint64(val) != want {
				err = fmt.Errorf("namespace %q key %q: version %d value %x, want %d", name, k, ver, val, want)
				return false
			}
			n++
			return true
		})
		if err != nil {
			return err
		}
		if n != keys {
			return fmt.Errorf("namespace %q: scan saw %d keys, want %d", name, n, keys)
		}
	}
	return nil
}

func TestDigest(t *testing.T) {
	build := func(order []int, mutate func(ns *Namespace)) [32]byte {
		s := New()
		s.Update(func() {
			ns := s.Namespace("n")
			for _, i := range order {
				ns.Set([]byte(fmt.Sprintf("key%02d", i)), []byte(fmt.Sprintf("value%d", i)), uint64(i+1))
			}
			if mutate != nil {
				mutate(ns)
			}
		})
		nv, _ := s.View().Namespace("n")
		return nv.Digest()
	}
	fwd := make([]int, 50)
	rev := make([]int, 50)
	for i := range fwd {
		fwd[i], rev[i] = i, 49-i
	}
	base := build(fwd, nil)
	if build(rev, nil) != base {
		t.Fatal("same contents in a different order give a different digest")
	}
	if build(fwd, func(ns *Namespace) { ns.Set([]byte("junk"), nil, 1); ns.Delete([]byte("junk")) }) != base {
		t.Fatal("insert+delete changed the digest")
	}
	changes := map[string]func(ns *Namespace){
		"value":   func(ns *Namespace) { ns.Set([]byte("key07"), []byte("value8"), 8) },
		"version": func(ns *Namespace) { ns.Set([]byte("key07"), []byte("value7"), 9) },
		"delete":  func(ns *Namespace) { ns.Delete([]byte("key07")) },
		"add":     func(ns *Namespace) { ns.Set([]byte("key99"), nil, 1) },
		"empty":   func(ns *Namespace) { ns.Set([]byte("key07"), nil, 8) },
	}
	for name, m := range changes {
		if build(fwd, m) == base {
			t.Errorf("changing %s did not change the digest", name)
		}
	}
	// Framing: moving a byte between key and value changes the digest.
	a := New()
	b := New()
	a.Update(func() { a.Namespace("n").Set([]byte("ab"), []byte("c"), 1) })
	b.Update(func() { b.Namespace("n").Set([]byte("a"), []byte("bc"), 1) })
	na, _ := a.View().Namespace("n")
	nb, _ := b.View().Namespace("n")
	if na.Digest() == nb.Digest() {
		t.Fatal("key/value boundary not framed")
	}
	if a.View().Digest() == b.View().Digest() {
		t.Fatal("View.Digest: key/value boundary not framed")
	}
	// Store digest covers namespace names.
	c := New()
	c.Update(func() { c.Namespace("m").Set([]byte("ab"), []byte("c"), 1) })
	if a.View().Digest() == c.View().Digest() {
		t.Fatal("View.Digest ignores namespace names")
	}
}

// TestViewSharedReaders has several goroutines persist, digest and scan the
// same view at once (run with -race) and get identical results.
func TestViewSharedReaders(t *testing.T) {
	s := sample()
	v := s.View()
	want := encode(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				var buf bytes.Buffer
				if _, err := v.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
					errs <- fmt.Errorf("concurrent WriteTo differs (err %v)", err)
					return
				}
				_ = v.Digest()
				nv, _ := v.Namespace("\x00binary\xff")
				if n := len(scanAll(nv, nil, nil, 0)); n != 41 {
					errs <- fmt.Errorf("concurrent scan saw %d records", n)
					return
				}
			}
		}()
	}
	// The writer keeps going meanwhile.
	for i := 0; i < 50; i++ {
		s.Update(func() { s.Namespace("alpha").Set([]byte(fmt.Sprint(i)), nil, uint64(100+i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
