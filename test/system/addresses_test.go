package system_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMemberAddresses: every member's HTTP API and management addresses
// are replicated: any node lists them in /v1/cluster and `raftkv members`,
// also for a member that is down; a not_leader answer gives the leader's
// URL; a follower pings the other members instead of calling every other
// follower unreachable.
func TestMemberAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test of the built binary; not in -short")
	}
	bin := buildBinary(t)
	cl := startCluster(t, bin, []string{"a1", "a2", "a3"}, []string{"127.0.0.31", "127.0.0.32", "127.0.0.33"})
	cl.waitReady(t, 3)
	leader := cl.leader(t)
	var followers []*proc
	for _, p := range cl {
		if p != leader {
			followers = append(followers, p)
		}
	}
	byID := map[string]*proc{}
	for _, p := range cl {
		byID[p.id] = p
	}
	for _, p := range cl {
		poll(t, 30*time.Second, "addresses on "+p.id, func() error {
			var info struct {
				Members []struct {
					ID          string `json:"id"`
					APIAddress  string `json:"api_address"`
					MgmtAddress string `json:"mgmt_address"`
				} `json:"members"`
			}
			if err := getJSON(p.url()+"/v1/cluster", &info); err != nil {
				return err
			}
			if len(info.Members) != 3 {
				return fmt.Errorf("%d members", len(info.Members))
			}
			for _, m := range info.Members {
				want := byID[m.ID]
				if want == nil || m.APIAddress != want.url() || m.MgmtAddress != want.mgmt {
					return fmt.Errorf("member %s: api %q mgmt %q", m.ID, m.APIAddress, m.MgmtAddress)
				}
			}
			return nil
		})
	}

	// A follower sees every member reachable, with its API address.
	table := mustCLI(t, "members", "--addr", followers[0].url())
	for _, p := range cl {
		if !regexp.MustCompile(`(?m)^` + p.id + ` +` + regexp.QuoteMeta(p.url()) + ` +` + regexp.QuoteMeta(p.raft) + ` +voter +(yes|no) +yes `).MatchString(table) {
			t.Fatalf("no reachable row with the API address for %s on a follower:\n%s", p.id, table)
		}
	}

	// not_leader names the leader's URL.
	resp, err := http.Post(followers[0].url()+"/v1/restore", "application/octet-stream", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Raftkv-Leader-Url") != leader.url() ||
		!strings.Contains(string(body), `"leader_url":"`+leader.url()+`"`) {
		t.Fatalf("restore on a follower: %d %s %v; want not_leader with the leader's URL %s", resp.StatusCode, body, resp.Header, leader.url())
	}

	// A member that is down keeps its addresses in the list, unreachable.
	followers[1].kill()
	poll(t, 30*time.Second, "the dead member listed", func() error {
		table := mustCLI(t, "members", "--addr", followers[0].url())
		if !regexp.MustCompile(`(?m)^` + followers[1].id + ` +` + regexp.QuoteMeta(followers[1].url()) + ` .* no `).MatchString(table) {
			return fmt.Errorf("no unreachable row for %s:\n%s", followers[1].id, table)
		}
		return nil
	})
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
