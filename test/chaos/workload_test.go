package chaos

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/internal/kvmodel"
)

// The workload: clients that put and get a few registers through random
// members, and write keys once each (for the lost-write check).
const (
	registers     = 16
	opTimeout     = 15 * time.Second // beyond the nodes' 10 s request deadline
	uniquePrefix  = "u/"
	registerKey   = "r%02d"
	uniquePercent = 5
)

// workload runs clients against a cluster and records what they saw.
type workload struct {
	c     *cluster
	start time.Time

	mu        sync.Mutex
	history   []porcupine.Operation
	nextID    int               // porcupine client IDs: a client takes a new one after an unknown outcome
	acked     map[string]string // unique keys whose write was acknowledged, and their value
	counts    map[string]int    // outcomes by kind, for the report
	samples   map[string]string // an answer of each kind that is not a success
	unexpectd []string          // answers the API does not document for these requests
}

func newWorkload(c *cluster) *workload {
	return &workload{c: c, start: time.Now(), acked: map[string]string{}, counts: map[string]int{},
		samples: map[string]string{}}
}

func (w *workload) now() int64 { return int64(time.Since(w.start)) }

// httpClientFrom returns an HTTP client whose connections come from clientIP.
func httpClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}

// run starts clients that work until ctx ends; wait for the returned group.
func (w *workload) run(ctx context.Context, clients int, seed uint64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, i, rand.New(rand.NewPCG(seed, uint64(i))))
		}()
	}
	return &wg
}

func (w *workload) newClientID() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextID++
	return w.nextID - 1
}

func (w *workload) count(kind string) { w.countAnswer(kind, "") }

// countAnswer counts an outcome and keeps the first answer of its kind.
func (w *workload) countAnswer(kind, sample string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts[kind]++
	if _, ok := w.samples[kind]; !ok && sample != "" {
		w.samples[kind] = sample
	}
}

// client loops: a put of a register (45%), a get at linearizable (25%) or
// at the default leader level (25%), or a write of a unique key (5%),
// each through a random member.
func (w *workload) client(ctx context.Context, num int, rng *rand.Rand) {
	hc := httpClientFrom(clientIP)
	id := w.newClientID()
	for i := 0; ctx.Err() == nil; i++ {
		members := w.c.serving()
		n := members[rng.IntN(len(members))]
		p := rng.IntN(100)
		var r result
		switch {
		case p < uniquePercent:
			key := fmt.Sprintf("%s%d/%d", uniquePrefix, num, i)
			r = w.putUnique(ctx, hc, n, key, fmt.Sprintf("c%d-%d", num, i))
		case p < 50:
			key := fmt.Sprintf(registerKey, rng.IntN(registers))
			r = w.put(ctx, hc, n, id, key, fmt.Sprintf("c%d-%d", num, i))
		case p < 75:
			r = w.read(ctx, hc, n, id, fmt.Sprintf(registerKey, rng.IntN(registers)), "linearizable")
		default:
			r = w.read(ctx, hc, n, id, fmt.Sprintf(registerKey, rng.IntN(registers)), "")
		}
		if r == pending {
			// After an unknown outcome this client is a new process for
			// porcupine (its old one never returns).
			id = w.newClientID()
		}
		if r != done {
			select { // back off: no leader answers a spinning client faster
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// result is what a client's operation leaves.
type result int

const (
	done    result = iota // answered with success
	failed                // answered with a failure; nothing to record
	pending               // a write whose outcome is unknown
)

// outcome classifies a write's answer: applied, certainly not applied, or
// unknown. A 503 is refused before the write was proposed (docs/api.md: the
// client package retries writes on it); a 504, a 5xx or no answer may hide
// an applied write.
type outcome int

const (
	applied outcome = iota
	notApplied
	unknown
)

func (w *workload) writeOutcome(a answer, err error) outcome {
	switch {
	case err != nil:
		w.countAnswer("write: no answer", err.Error())
		return unknown
	case a.status == 200:
		w.count("write: ok")
		return applied
	case a.status == 503:
		w.countAnswer("write: 503 "+a.errorCode(), a.String())
		return notApplied
	case removedMember(a):
		w.countAnswer("write: 403 forbidden (not a member)", a.String())
		return notApplied
	case a.status == 504 || a.status == 500:
		w.countAnswer(fmt.Sprintf("write: %d %s", a.status, a.errorCode()), a.String())
		return unknown
	}
	w.countAnswer(fmt.Sprintf("write: %d %s", a.status, a.errorCode()), a.String())
	w.mu.Lock()
	w.unexpectd = append(w.unexpectd, "write: "+a.String())
	w.mu.Unlock()
	return unknown
}

// removedMember reports the answer of a node that the leader no longer
// counts as a member (it is being removed): the leader refuses what it
// forwards, before anything is proposed. A client may meet it between the
// removal and the node's shutdown; the suite's clients stop using a node
// when its removal starts, so only requests under way get it.
func removedMember(a answer) bool {
	return a.status == 403 && a.errorCode() == "forbidden" && strings.Contains(string(a.body), "is not a member")
}

// put writes a register and records it in the history.
func (w *workload) put(ctx context.Context, hc *http.Client, n *node, id int, key, value string) result {
	op := porcupine.Operation{ClientId: id, Input: kvmodel.HistoryInput{Put: true, Key: key, Value: value},
		Output: kvmodel.HistoryOutput{}, Call: w.now()}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	a, err := do(octx, hc, "PUT", n.url()+"/v1/kv/"+url.PathEscape(key), []byte(value))
	cancel()
	op.Return = w.now()
	o := w.writeOutcome(a, err)
	switch o {
	case notApplied:
		return failed
	case unknown:
		op.Return = math.MaxInt64 // may take effect at any time after its call
	}
	w.mu.Lock()
	w.history = append(w.history, op)
	w.mu.Unlock()
	if o == unknown {
		return pending
	}
	return done
}

// putUnique writes a key once; an acknowledged one must survive everything.
func (w *workload) putUnique(ctx context.Context, hc *http.Client, n *node, key, value string) result {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	a, err := do(octx, hc, "PUT", n.url()+"/v1/kv/"+url.PathEscape(key), []byte(value))
	cancel()
	switch w.writeOutcome(a, err) {
	case applied:
		w.mu.Lock()
		w.acked[key] = value
		w.mu.Unlock()
		return done
	case notApplied:
		return failed
	}
	return pending
}

// read gets a register at a consistency level ("" is the default, leader)
// and records what it saw. A failed read tells nothing and is not recorded.
func (w *workload) read(ctx context.Context, hc *http.Client, n *node, id int, key, level string) result {
	op := porcupine.Operation{ClientId: id, Input: kvmodel.HistoryInput{Key: key}, Call: w.now()}
	u := n.url() + "/v1/kv/" + url.PathEscape(key)
	kind := "read leader (default)"
	if level != "" {
		u += "?consistency=" + level
		kind = "read " + level
	}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	a, err := do(octx, hc, "GET", u, nil)
	cancel()
	op.Return = w.now()
	switch {
	case err != nil:
		w.countAnswer(kind+": no answer", err.Error())
		return failed
	case a.status == 200:
		op.Output = kvmodel.HistoryOutput{Value: string(a.body), Found: true}
	case a.status == 404 && a.errorCode() == "not_found":
		op.Output = kvmodel.HistoryOutput{}
	default:
		w.countAnswer(fmt.Sprintf("%s: %d %s", kind, a.status, a.errorCode()), a.String())
		if a.status != 503 && a.status != 504 && !removedMember(a) {
			w.mu.Lock()
			w.unexpectd = append(w.unexpectd, kind+": "+a.String())
			w.mu.Unlock()
		}
		return failed
	}
	w.count(kind + ": ok")
	w.mu.Lock()
	w.history = append(w.history, op)
	w.mu.Unlock()
	return done
}

// finalReads reads every register at linearizable through each member,
// once the faults are over, so that the history ends with what the cluster
// kept.
func (w *workload) finalReads(ctx context.Context) {
	hc := httpClientFrom(clientIP)
	id := w.newClientID()
	for _, n := range w.c.members() {
		for r := range registers {
			w.read(ctx, hc, n, id, fmt.Sprintf(registerKey, r), "linearizable")
		}
	}
}

// prunedHistory is the history without the writes of unknown outcome whose
// value no read returned: porcupine may place such a write after everything
// else, where it changes nothing, so dropping it keeps the verdict and
// spares the search (values are unique).
func (w *workload) prunedHistory() []porcupine.Operation {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for _, op := range w.history {
		if in := op.Input.(kvmodel.HistoryInput); !in.Put {
			if out := op.Output.(kvmodel.HistoryOutput); out.Found {
				seen[out.Value] = true
			}
		}
	}
	var out []porcupine.Operation
	for _, op := range w.history {
		in := op.Input.(kvmodel.HistoryInput)
		if in.Put && op.Return == math.MaxInt64 && !seen[in.Value] {
			continue
		}
		out = append(out, op)
	}
	return out
}
