package system_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeDiskFull: a follower whose data directory fills up (a 16 MiB
// tmpfs) reports it on /healthz (503 degraded, with the reason) and in
// raftkv_log_write_failing, does not crash, and resumes by itself once
// space is freed: /healthz and /readyz go back to 200 and it serves what
// was written meanwhile. The others keep committing without it. (The old
// code said ok on /healthz and /readyz, and did not recover until
// restarted.) Needs root, to mount the tmpfs.
func TestServeDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs for the full disk (CI runs as root)")
	}
	bin := buildBinary(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { // after the processes are gone (cleanups run last first)
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	var c e2eCluster
	for i, id := range []string{"n1", "n2", "n3"} {
		join := ""
		if i > 0 {
			join = c[0].url()
		}
		p := newProc(t, bin, id, "127.0.0.1", join)
		if id == "n3" {
			for j, a := range p.args {
				if a == "--data-dir" {
					p.args[j+1] = filepath.Join(mnt, "data")
				}
			}
		}
		p.start()
		c = append(c, p)
		if i == 0 {
			c.waitReady(t, 1) // n1 leads; the others join as followers
		}
	}
	c.waitReady(t, 3)
	n3 := c.byID("n3")

	filler := fillDisk(t, mnt)
	value := strings.Repeat("x", 2000)
	written := 0
	write := func() {
		poll(t, 30*time.Second, "a write to the majority", func() error {
			l := c[0]
			if l == n3 {
				l = c[1]
			}
			r, err := doHTTP("PUT", fmt.Sprintf("%s/v1/kv/k%05d", l.url(), written), []byte(value))
			if err == nil && r.status != 200 {
				err = fmt.Errorf("%d %s", r.status, r.body)
			}
			return err
		})
		written++
	}
	var degraded string
	poll(t, 90*time.Second, "n3 reporting its full disk", func() error {
		for range 20 {
			write()
		}
		if !n3.running() {
			t.Fatalf("n3 exited with its disk full:\n%s", n3.log(n3.starts))
		}
		r, err := doHTTP("GET", n3.url()+"/healthz", nil)
		if err != nil {
			return err
		}
		if r.status != 503 || !strings.Contains(r.body, `"degraded"`) {
			return fmt.Errorf("/healthz %d %s after %d writes", r.status, r.body, written)
		}
		degraded = r.body
		return nil
	})
	if !strings.Contains(degraded, "no space left on device") {
		t.Errorf("/healthz of the full node: %s; want the reason", degraded)
	}
	if v := metric(t, n3, "raftkv_log_write_failing"); v != 1 {
		t.Errorf("raftkv_log_write_failing = %v, want 1", v)
	}
	if v := metric(t, n3, "raftkv_log_write_errors_total"); v < 1 {
		t.Errorf("raftkv_log_write_errors_total = %v, want at least 1", v)
	}
	t.Logf("after %d writes: %s", written, degraded)
	// The cluster's view says so too (it said "catching up" before).
	if r := cli(t, "health", "--cluster", "--addr", c[0].url()); r.code != exitError ||
		!strings.Contains(r.stdout, "n3 ") || !strings.Contains(r.stdout, " degraded: cannot write its Raft log: ") ||
		!strings.Contains(r.stdout, "no space left on device") {
		t.Errorf("health --cluster with n3's disk full: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for range 20 { // the majority goes on without n3
		write()
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf("k%05d", written-1)
	poll(t, 90*time.Second, "n3 resuming by itself", func() error {
		for _, path := range []string{"/healthz", "/readyz", "/v1/kv/" + last + "?consistency=stale"} {
			r, err := doHTTP("GET", n3.url()+path, nil)
			if err != nil {
				return err
			}
			if r.status != 200 {
				return fmt.Errorf("%s: %d %s", path, r.status, r.body)
			}
		}
		return nil
	})
	if v := metric(t, n3, "raftkv_log_write_failing"); v != 0 {
		t.Errorf("raftkv_log_write_failing = %v after the recovery, want 0", v)
	}
	if n3.starts != 1 {
		t.Fatalf("n3 was restarted")
	}
}

// TestServeDiskFullSingleNode: a single-node cluster whose disk fills up
// answers writes 503 degraded, with the reason, not 500 (its own failed
// append) and then 503 no_leader (it stepped down and cannot record its
// vote to lead again), and takes writes again once space is freed, without
// a restart. Needs root, to mount the tmpfs.
func TestServeDiskFullSingleNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs for the full disk (CI runs as root)")
	}
	bin := buildBinary(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	p := newProc(t, bin, "n1", "127.0.0.1", "")
	for j, a := range p.args {
		if a == "--data-dir" {
			p.args[j+1] = filepath.Join(mnt, "data")
		}
	}
	p.start()
	c := e2eCluster{p}
	c.waitReady(t, 1)

	filler := fillDisk(t, mnt)
	value := strings.Repeat("x", 4000)
	var answers []string
	for i := 0; len(answers) < 5; i++ {
		if i == 2000 {
			t.Fatalf("2000 writes on a full disk succeeded")
		}
		r, err := doHTTP("PUT", fmt.Sprintf("%s/v1/kv/k%05d", p.url(), i), []byte(value))
		if err != nil {
			t.Fatal(err)
		}
		if r.status == 200 {
			continue // BoltDB reuses the pages it freed, for a while
		}
		answers = append(answers, fmt.Sprintf("%d %s", r.status, r.body))
		if r.status != 503 || !strings.Contains(r.body, `"degraded"`) || !strings.Contains(r.body, "no space left on device") {
			t.Errorf("write %d on a full disk: %d %s; want 503 degraded with the reason", i, r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("writes on a full disk: %s", strings.Join(answers, "; "))
	if !p.running() {
		t.Fatalf("the node exited with its disk full")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "writes once space is freed", func() error {
		r, err := doHTTP("PUT", p.url()+"/v1/kv/after", []byte("ok"))
		if err == nil && r.status != 200 {
			err = fmt.Errorf("%d %s", r.status, r.body)
		}
		return err
	})
	if p.starts != 1 {
		t.Fatalf("the node was restarted")
	}
}

// fillDisk writes a file in dir until the file system is full and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// metric reads one unlabelled metric from the node's /metrics.
func metric(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	r := mustHTTP(t, 200, "GET", p.url()+"/metrics", nil)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
