// Package crashtest is a crash-injection test of the Raft log stores
// (host/logstore): a worker process appends, head-truncates, tail-truncates
// and wipes its log at random, the way Raft does, and reports every
// operation before it starts and once the store acknowledged it; the parent
// kills the worker with SIGKILL at a random point, reopens the store and
// checks it against a model of the acknowledged operations.
//
// The operations are those hashicorp/raft performs on its log store:
//
//   - append: StoreLogs of a batch at the next index (a leader's new
//     entries, a follower's AppendEntries);
//   - head truncation: DeleteRange(first, k), compaction after a snapshot;
//   - tail truncation: DeleteRange(k, last) then appends from k in a higher
//     term, a follower clearing a deposed leader's uncommitted suffix;
//   - wipe: DeleteRange(first, last) then appends from a later index, a
//     follower installing a snapshot (raft's removeOldLogs);
//   - term: SetUint64("CurrentTerm"), the stable store.
//
// After a kill the reopened store must equal the model of the acknowledged
// operations, or the model with the one operation in flight applied (for an
// append: any prefix of its batch): every acknowledged entry is there with
// its content, the log is contiguous from its first index to its last, no
// entry after the last (truncated ones) is readable, and the term is the
// last one set. A store that cannot be reopened fails the test.
//
// The kernel keeps what a killed process wrote, so this tests a process
// crash, not a power loss.
package crashtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/host/logstore"
)

// termKey is the stable store key the worker keeps its term under (Raft's).
var termKey = []byte("CurrentTerm")

// Worker runs random log operations on the store in dir until one fails or
// the process is killed, writing one line to out before each operation
// ("B <op>") and one once the store acknowledged it ("A"). out should be
// unbuffered (a pipe): a line written before the kill must reach the
// parent. It returns only on an error.
func Worker(dir, kind string, segmentBytes int, seed uint64, out io.Writer) error {
	s, _, err := logstore.Open(logstore.Config{Dir: dir, Kind: kind, WALSegmentBytes: segmentBytes})
	if err != nil {
		return err
	}
	defer s.Close()
	w := &worker{s: s, out: out, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if w.first, err = s.FirstIndex(); err != nil {
		return err
	}
	if w.last, err = s.LastIndex(); err != nil {
		return err
	}
	if w.term, err = s.GetUint64(termKey); err != nil && err.Error() != "not found" {
		return err
	}
	w.next = w.last + 1
	// A restarted Raft node takes a new term before it writes: entries
	// written from here on are told apart from any before by their term.
	if err := w.do(fmt.Sprintf("S %d", w.term+1), func() error { return s.SetUint64(termKey, w.term+1) }); err != nil {
		return err
	}
	w.term++
	for {
		if err := w.step(); err != nil {
			return err
		}
	}
}

type worker struct {
	s                       logstore.Store
	out                     io.Writer
	rng                     *rand.Rand
	first, last, next, term uint64
}

func (w *worker) do(op string, f func() error) error {
	if _, err := io.WriteString(w.out, "B "+op+"\n"); err != nil {
		return err
	}
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := io.WriteString(w.out, "A\n")
	return err
}

func (w *worker) step() error {
	empty := w.last == 0
	switch p := w.rng.IntN(100); {
	case p < 10 && !empty: // head truncation, sometimes of everything
		k := w.first + w.rng.Uint64N(w.last-w.first+1)
		if err := w.do(fmt.Sprintf("H %d", k), func() error { return w.s.DeleteRange(w.first, k) }); err != nil {
			return err
		}
		if k == w.last {
			w.first, w.last = 0, 0
		} else {
			w.first = k + 1
		}
	case p < 22 && !empty && w.last > w.first: // tail truncation in a new term
		k := w.first + 1 + w.rng.Uint64N(w.last-w.first)
		if err := w.do(fmt.Sprintf("S %d", w.term+1), func() error { return w.s.SetUint64(termKey, w.term+1) }); err != nil {
			return err
		}
		w.term++
		if err := w.do(fmt.Sprintf("T %d", k), func() error { return w.s.DeleteRange(k, w.last) }); err != nil {
			return err
		}
		w.last, w.next = k-1, k
	case p < 26 && !empty: // a snapshot installed: wipe, continue later
		if err := w.do("W", func() error { return w.s.DeleteRange(w.first, w.last) }); err != nil {
			return err
		}
		w.next = w.last + 1 + w.rng.Uint64N(1000)
		w.first, w.last = 0, 0
	default: // append a batch
		n := 1 + w.rng.Uint64N(32)
		batch := make([]*raft.Log, n)
		for i := range batch {
			idx := w.next + uint64(i)
			batch[i] = &raft.Log{Index: idx, Term: w.term, Type: raft.LogCommand, Data: Data(idx, w.term)}
		}
		if err := w.do(fmt.Sprintf("A %d %d %d", w.next, n, w.term), func() error { return w.s.StoreLogs(batch) }); err != nil {
			return err
		}
		if w.last == 0 {
			w.first = w.next
		}
		w.last = w.next + n - 1
		w.next = w.last + 1
	}
	return nil
}

// Data is the content of the entry at index in term: its identity, then
// filler of a size that varies with both, a few KiB now and then, so that
// segments fill and roll over.
func Data(index, term uint64) []byte {
	size := (index*7919 + term*104729) % 600
	if (index+term)%41 == 0 {
		size += 8 << 10
	}
	b := fmt.Appendf(nil, "%d/%d/", index, term)
	return append(b, bytes.Repeat([]byte{byte('a' + (index+term)%26)}, int(size))...)
}

// Model is the acknowledged state of a log: entries First..Last (none when
// Last is 0), each with its term, and the stable term.
type Model struct {
	First, Last uint64
	Terms       map[uint64]uint64 // index -> term of every entry in First..Last
	Term        uint64
	next        uint64 // where the worker appends next (after a wipe, past Last+1)
}

// NewModel returns the model of an empty store.
func NewModel() *Model { return &Model{Terms: map[uint64]uint64{}} }

func (m *Model) clone() *Model {
	c := *m
	c.Terms = make(map[uint64]uint64, len(m.Terms))
	for k, v := range m.Terms {
		c.Terms[k] = v
	}
	return &c
}

// op is one worker operation.
type op struct {
	kind    byte // 'A' append, 'H' head, 'T' tail, 'W' wipe, 'S' term
	a, b, c uint64
}

func parseOp(line string) (op, error) {
	f := strings.Fields(line)
	if len(f) == 0 || len(f[0]) != 1 {
		return op{}, fmt.Errorf("bad operation %q", line)
	}
	o := op{kind: f[0][0]}
	nums := []*uint64{&o.a, &o.b, &o.c}
	for i, s := range f[1:] {
		if i >= len(nums) {
			return op{}, fmt.Errorf("bad operation %q", line)
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return op{}, fmt.Errorf("bad operation %q: %v", line, err)
		}
		*nums[i] = v
	}
	return o, nil
}

// apply returns the model after o (for an append, of its first n entries).
func (m *Model) apply(o op, n uint64) *Model {
	c := m.clone()
	switch o.kind {
	case 'S':
		c.Term = o.a
	case 'A':
		for i := range n {
			c.Terms[o.a+i] = o.c
		}
		if n > 0 {
			if c.Last == 0 {
				c.First = o.a
			}
			c.Last = o.a + n - 1
			c.next = c.Last + 1
		}
	case 'H':
		for i := c.First; i <= o.a; i++ {
			delete(c.Terms, i)
		}
		if o.a >= c.Last {
			c.next = c.Last + 1
			c.First, c.Last = 0, 0
		} else {
			c.First = o.a + 1
		}
	case 'T':
		for i := o.a; i <= c.Last; i++ {
			delete(c.Terms, i)
		}
		c.Last, c.next = o.a-1, o.a
	case 'W':
		c.Terms = map[uint64]uint64{}
		c.next = c.Last + 1
		c.First, c.Last = 0, 0
	}
	return c
}

// outcomes are the states a store may be in when o was in flight at the
// kill: before it, after it, or, for an append, after a prefix of it.
func (m *Model) outcomes(o op) []*Model {
	if o.kind != 'A' {
		return []*Model{m, m.apply(o, 0)}
	}
	var out []*Model
	for n := range o.b + 1 {
		out = append(out, m.apply(o, n))
	}
	return out
}

// Check compares a reopened store with the model and returns the first
// difference.
func (m *Model) Check(s logstore.Store) error {
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.LastIndex()
	if err != nil {
		return err
	}
	term, err := s.GetUint64(termKey)
	if err != nil && err.Error() != "not found" {
		return err
	}
	if term != m.Term {
		return fmt.Errorf("term %d, want %d", term, m.Term)
	}
	if last != m.Last || (m.Last != 0 && first != m.First) {
		return fmt.Errorf("log %d..%d, want %d..%d", first, last, m.First, m.Last)
	}
	var l raft.Log
	for i := m.First; m.Last != 0 && i <= m.Last; i++ {
		if err := s.GetLog(i, &l); err != nil {
			return fmt.Errorf("entry %d (log %d..%d): %v", i, m.First, m.Last, err)
		}
		if t := m.Terms[i]; l.Index != i || l.Term != t || !bytes.Equal(l.Data, Data(i, t)) {
			return fmt.Errorf("entry %d: got index %d term %d data %.20q, want term %d", i, l.Index, l.Term, l.Data, t)
		}
	}
	// No truncated entry comes back past the end.
	for i := m.Last + 1; i <= m.Last+3; i++ {
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			return fmt.Errorf("entry %d after the last (%d): got %v (index %d term %d), want %v", i, m.Last, err, l.Index, l.Term, raft.ErrLogNotFound)
		}
	}
	return nil
}

// Iteration is what one run of the worker did.
type Iteration struct {
	Acked    int    // operations acknowledged
	InFlight string // the operation in flight at the kill ("" if none)
	Outcome  string // which outcome of it the store showed: "before", "after", "prefix N"
}

// Iterate runs cmd, a worker whose fd 3 (cmd.ExtraFiles[0], set here) gets
// its reports, kills it with SIGKILL once it acknowledged killAfter
// operations (then after delay), advances m over what it acknowledged and
// checks the store open returns against m. m is left as the state the
// store was found in.
func Iterate(cmd *exec.Cmd, m *Model, killAfter int, delay time.Duration, open func() (logstore.Store, error)) (Iteration, error) {
	var it Iteration
	pr, pw, err := os.Pipe()
	if err != nil {
		return it, err
	}
	cmd.ExtraFiles = []*os.File{pw}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return it, err
	}
	pw.Close()
	killed := false
	kill := func() {
		if !killed {
			if delay > 0 {
				time.Sleep(delay)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	if killAfter == 0 {
		kill()
	}
	var pending *op
	var pendingLine string
	sc := bufio.NewScanner(pr)
	var protoErr error
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "B "):
			o, err := parseOp(line[2:])
			if err != nil && protoErr == nil {
				protoErr = err
			}
			pending, pendingLine = &o, line[2:]
		case line == "A" && pending != nil:
			*m = *m.apply(*pending, pending.b)
			pending = nil
			it.Acked++
			if it.Acked == killAfter {
				kill()
			}
		default:
			if protoErr == nil {
				protoErr = fmt.Errorf("unexpected report %q", line)
			}
		}
	}
	pr.Close()
	kill()
	werr := cmd.Wait()
	if protoErr != nil {
		return it, protoErr
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return it, fmt.Errorf("the worker ended by itself (%v) after %d operations: %s", werr, it.Acked, stderr.String())
	}

	s, err := open()
	if err != nil {
		return it, fmt.Errorf("reopening after a kill during %q (%d acknowledged): %w", pendingLine, it.Acked, err)
	}
	defer s.Close()
	if pending == nil {
		if err := m.Check(s); err != nil {
			return it, fmt.Errorf("after a kill between operations (%d acknowledged): %w", it.Acked, err)
		}
		return it, nil
	}
	it.InFlight = pendingLine
	var errs []string
	for i, c := range m.outcomes(*pending) {
		err := c.Check(s)
		if err == nil {
			*m = *c
			switch {
			case i == 0:
				it.Outcome = "before"
			case pending.kind != 'A' || uint64(i) == pending.b:
				it.Outcome = "after"
			default:
				it.Outcome = fmt.Sprintf("prefix %d", i)
			}
			return it, nil
		}
		errs = append(errs, err.Error())
	}
	return it, fmt.Errorf("after a kill during %q (%d acknowledged), the store matches neither outcome: %s", pendingLine, it.Acked, strings.Join(errs, "; "))
}
