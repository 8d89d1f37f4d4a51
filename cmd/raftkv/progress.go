package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress reports bytes transferred on w (standard error): a line rewritten
// in place on a terminal, a line a second otherwise, and a final line.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int64 // -1 if unknown
	n        int64
	last     time.Time
	terminal bool
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, last: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// set records the bytes transferred so far (a retry starts again).
func (p *progress) set(n int64) {
	p.mu.Lock()
	p.n = n
	p.mu.Unlock()
	p.add(0)
}

func (p *progress) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(n)
	every := time.Second
	if p.terminal {
		every = 100 * time.Millisecond
	}
	if time.Since(p.last) >= every {
		p.last = time.Now()
		p.print("")
	}
}

func (p *progress) print(end string) {
	s := fmt.Sprintf("%s: %s", p.label, formatBytes(p.n))
	if end != "" {
		s = fmt.Sprintf("%s: %d bytes", p.label, p.n)
	} else if p.total > 0 {
		s += fmt.Sprintf(" of %s %s (%d%%)", formatBytes(p.total), bar(int(min(p.n, p.total)*100/p.total), 100), p.n*100/p.total)
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s%s\x1b[K", s, end)
		if end == "" {
			return
		}
	} else {
		fmt.Fprint(p.w, s, end)
	}
	fmt.Fprintln(p.w)
}

// done prints the final line.
func (p *progress) done(suffix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.print(suffix)
}

// reader counts what r yields.
func (p *progress) reader(r io.Reader) io.Reader { return progressReader{r, p} }

// writer counts what goes to w.
func (p *progress) writer(w io.Writer) io.Writer { return progressWriter{w, p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// lockedWriter serialises writes to w: a restore's progress and phases
// write from the HTTP transport's goroutine and from the command's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
