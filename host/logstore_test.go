package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// TestLogStoreKinds: a new data directory gets the configured store (WAL by
// default), a reopened one the store it has whatever the configuration says,
// and both stores keep logs and stable values across a reopen.
func TestLogStoreKinds(t *testing.T) {
	for _, tc := range []struct{ create, reopen, want string }{
		{"", LogStoreBolt, LogStoreWAL},
		{LogStoreWAL, "", LogStoreWAL},
		{LogStoreBolt, LogStoreWAL, LogStoreBolt},
	} {
		t.Run(tc.create+"-"+tc.reopen, func(t *testing.T) {
			dir := t.TempDir()
			s, kind, err := openLogStore(dir, tc.create, 0)
			if err != nil {
				t.Fatal(err)
			}
			if kind != tc.want {
				t.Fatalf("new data directory with %q: got %s, want %s", tc.create, kind, tc.want)
			}
			logs := []*raft.Log{{Index: 1, Term: 1, Data: []byte("a")}, {Index: 2, Term: 1, Data: []byte("b")}}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, kind, err = openLogStore(dir, tc.reopen, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if kind != tc.want {
				t.Fatalf("reopened with %q: got %s, want the %s it was created with", tc.reopen, kind, tc.want)
			}
			var l raft.Log
			if err := s.GetLog(2, &l); err != nil || string(l.Data) != "b" {
				t.Fatalf("GetLog(2) = %+v, %v", l, err)
			}
			if last, err := s.LastIndex(); err != nil || last != 2 {
				t.Fatalf("LastIndex = %d, %v", last, err)
			}
			if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
				t.Fatalf("CurrentTerm = %d, %v", v, err)
			}
		})
	}
}

// TestLogStoreAmbiguous: a data directory with both stores is refused rather
// than guessed at.
func TestLogStoreAmbiguous(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openLogStore(dir, LogStoreBolt, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.MkdirAll(filepath.Join(dir, walDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openLogStore(dir, "", 0); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("a data directory with both stores: %v, want an error naming both", err)
	}
}
