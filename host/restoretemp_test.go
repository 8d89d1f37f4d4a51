package host_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/raftkv/raftkv/internal/cluster"
)

// TestRestartRemovesRestoreCopies: a node killed during a restore leaves
// the restore's copy of the backup in its data dir (each the backup's
// size); the next start removes it, and only it. They stayed for good
// (attack round 3: two 4 MB copies after SIGKILL and two restarts).
func TestRestartRemovesRestoreCopies(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 1})
	m := c.Leader()
	c.Crash(m)
	left := filepath.Join(m.DataDir(), "restore-411108494.snap")
	other := filepath.Join(m.DataDir(), "restore-notes.txt")
	for _, f := range []string{left, other} {
		if err := os.WriteFile(f, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart(m)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the interrupted restore's copy is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file that is not a restore's copy: %v", err)
	}
	if !c.Logged("removed an interrupted restore's copy of its backup", "restore-411108494.snap") {
		t.Error("the removal is not logged")
	}
}
