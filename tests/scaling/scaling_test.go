// Package scaling_test runs several writers and several readers on one store with no
// coordination but the store's own rules (unique segment names, atomic publish, the
// compaction lock): two `blueticks serve` receivers on two 127.0.0.1 ports, a third
// receiver that only runs retention when it starts, two plugin processes driven over the
// plugin protocol as Grafana drives them, and two `blueticks query` processes. See
// docs/SCALING.md and scripts/scaling-demo.sh.
//
// BLUETICKS_PLUGIN_BINARY and BLUETICKS_CLI_BINARY name prebuilt binaries; without them
// both are built once (go build).
package scaling_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
	"github.com/blueticks/blueticks-whatsapp-datasource/tests/harness"
)

const (
	apiToken = "scaling-test-api-token"
	hashKey  = "scaling-test-hash-key-0123456789"
)

// The KPIs both readers must agree on, and that the generator knows the answer to.
var metrics = []string{"sent", "delivered", "read", "failed", "received", "blocked"}

var queryJSON = `{"queryType":"table","metrics":["` + strings.Join(metrics, `","`) + `"]}`

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// TestMain removes the CLI binary the tests built (~100 MB in the temporary directory).
func TestMain(m *testing.M) {
	code := m.Run()
	if cliPath != "" {
		os.RemoveAll(filepath.Dir(cliPath))
	}
	os.Exit(code)
}

// cli returns the blueticks binary: $BLUETICKS_CLI_BINARY, or one built once.
func cli(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BLUETICKS_CLI_BINARY"); p != "" {
		return p
	}
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blueticks-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "blueticks")
		cmd := exec.Command("go", "build", "-o", cliPath, "./pkg/cmd/blueticks")
		cmd.Dir = harness.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, cliErr)
	return cliPath
}

// receiver is one `blueticks serve` process.
type receiver struct {
	name string
	cmd  *exec.Cmd
	base string
	done chan error
	logs *bytes.Buffer
	mu   sync.Mutex
}

func startReceiver(t *testing.T, name, bin, dir string, extra ...string) *receiver {
	t.Helper()
	args := append([]string{"serve", "--store", dir, "--listen", "127.0.0.1:0", "--compact-every", "200ms"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "BLUETICKS_API_TOKEN="+apiToken, "BLUETICKS_HASH_KEY="+hashKey)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	r := &receiver{name: name, cmd: cmd, done: make(chan error, 1), logs: &bytes.Buffer{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.logs.Write(sc.Bytes())
			r.logs.WriteByte('\n')
			r.mu.Unlock()
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case a := <-addr:
		r.base = "http://" + a
	case err := <-r.done:
		t.Fatalf("%s exited before listening: %v\n%s", name, err, r.log())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s did not listen within 30 s", name)
	}
	return r
}

func (r *receiver) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// stop asks for a graceful shutdown (SIGTERM: finish requests, commit the queue).
func (r *receiver) stop(t *testing.T) {
	if r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Errorf("%s did not stop within 30 s of SIGTERM", r.name)
	}
}

// metric sums a Prometheus counter or gauge of the receiver whose labels contain match.
func (r *receiver) metric(name, match string) float64 {
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		rest := strings.TrimPrefix(line, name)
		if rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// post sends one NDJSON batch to the events API, retrying on 429/503 as a client should.
func (r *receiver) post(ctx context.Context, client *http.Client, body []byte) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/v1/events", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+apiToken)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			var ans struct {
				Rejected int `json:"rejected_count"`
			}
			if err := json.Unmarshal(msg, &ans); err != nil || ans.Rejected != 0 {
				return fmt.Errorf("%s: %s", r.name, msg)
			}
			return nil
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 50:
			time.Sleep(100 * time.Millisecond)
		default:
			return fmt.Errorf("%s answered %d: %s", r.name, resp.StatusCode, msg)
		}
	}
}

// workload is a deterministic set of events and the counts SPEC gives for them.
type workload struct {
	recent []map[string]any // in the query range
	old    []map[string]any // 60 days old: retention (30 days) must delete them
	want   map[string]float64
}

func newWorkload(now time.Time, messages int) *workload {
	w := &workload{want: map[string]float64{}}
	base := now.Add(-36 * time.Hour)
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	for i := 0; i < messages; i++ {
		sent := base.Add(time.Duration(i) * 7 * time.Second)
		mid := fmt.Sprintf("wamid.scale-%d", i)
		contact := fmt.Sprintf("c_%04d", i%700)
		w.recent = append(w.recent, map[string]any{"event_id": "sent-" + strconv.Itoa(i), "ts": ts(sent), "type": "sent",
			"message_id": mid, "contact_id": contact, "sender": "campaign", "campaign": fmt.Sprintf("camp-%d", i%5)})
		w.want["sent"]++
		delivered := i%10 != 0
		if delivered {
			w.recent = append(w.recent, map[string]any{"event_id": "dlv-" + strconv.Itoa(i), "ts": ts(sent.Add(4 * time.Second)), "type": "delivered", "message_id": mid})
			if i%3 == 0 {
				w.recent = append(w.recent, map[string]any{"event_id": "read-" + strconv.Itoa(i), "ts": ts(sent.Add(90 * time.Second)), "type": "read", "message_id": mid})
				w.want["read"]++
			}
		} else {
			w.recent = append(w.recent, map[string]any{"event_id": "fail-" + strconv.Itoa(i), "ts": ts(sent.Add(3 * time.Second)), "type": "failed", "message_id": mid, "error_code": 131026})
			w.want["failed"]++
		}
		if i%7 == 0 { // a reply credits the message: delivered even without a status
			w.recent = append(w.recent, map[string]any{"event_id": "in-" + strconv.Itoa(i), "ts": ts(sent.Add(5 * time.Minute)), "type": "received",
				"message_id": "wamid.in-" + strconv.Itoa(i), "reply_to": mid, "contact_id": contact, "sender": "customer"})
			w.want["received"]++
		}
		if delivered || i%7 == 0 {
			w.want["delivered"]++
		}
		if i%40 == 0 {
			w.recent = append(w.recent, map[string]any{"event_id": "blk-" + strconv.Itoa(i), "ts": ts(sent.Add(20 * time.Minute)), "type": "blocked", "contact_id": contact})
			w.want["blocked"]++
		}
	}
	for i := 0; i < 300; i++ {
		w.old = append(w.old, map[string]any{"event_id": "old-" + strconv.Itoa(i), "ts": ts(now.AddDate(0, 0, -60).Add(time.Duration(i) * time.Minute)),
			"type": "sent", "message_id": "wamid.old-" + strconv.Itoa(i), "contact_id": "c_old", "sender": "campaign", "campaign": "old"})
	}
	return w
}

func ndjson(evs []map[string]any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range evs {
		_ = enc.Encode(e)
	}
	return b.Bytes()
}

// delivery is one request: a batch to one receiver.
type delivery struct {
	to   *receiver
	body []byte
}

// plan splits events into batches of size n, each to one receiver in turn; a quarter of
// the batches are sent to the other receiver too (the same event ids: readers must count
// them once) and one in twenty again to the same receiver (a client's retry).
func plan(rng *rand.Rand, evs []map[string]any, n int, a, b *receiver) []delivery {
	shuffled := append([]map[string]any(nil), evs...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var out []delivery
	for i, k := 0, 0; i < len(shuffled); i, k = i+n, k+1 {
		body := ndjson(shuffled[i:min(i+n, len(shuffled))])
		first, other := a, b
		if k%2 == 1 {
			first, other = b, a
		}
		out = append(out, delivery{first, body})
		if rng.IntN(4) == 0 {
			out = append(out, delivery{other, body})
		}
		if rng.IntN(20) == 0 {
			out = append(out, delivery{first, body})
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// send delivers with a bounded number of concurrent clients, pacing each a little so the
// ingest lasts long enough for compaction to run beside it.
func send(ctx context.Context, t *testing.T, ds []delivery, clients int, pause time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	work := make(chan delivery)
	errs := make(chan error, len(ds))
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				if err := d.to.post(ctx, client, d.body); err != nil {
					errs <- err
				}
				time.Sleep(pause)
			}
		}()
	}
	for _, d := range ds {
		work <- d
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// counts is one reader's answer.
type counts map[string]float64

func (c counts) String() string {
	parts := make([]string, 0, len(metrics))
	for _, m := range metrics {
		parts = append(parts, fmt.Sprintf("%s=%v", m, c[m]))
	}
	return strings.Join(parts, " ")
}

func pluginCounts(ctx context.Context, p *harness.Client, from, to time.Time) (counts, error) {
	resp, err := p.QueryData(ctx, &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", JSON: json.RawMessage(queryJSON),
		TimeRange: backend.TimeRange{From: from, To: to}, Interval: time.Hour, MaxDataPoints: 100}}})
	if err != nil {
		return nil, err
	}
	r := resp.Responses["A"]
	if r.Error != nil {
		return nil, r.Error
	}
	if len(r.Frames) != 1 || r.Frames[0].Rows() != 1 {
		return nil, fmt.Errorf("want one frame of one row, got %d frames", len(r.Frames))
	}
	out := counts{}
	for _, f := range r.Frames[0].Fields {
		v, ok := f.ConcreteAt(0)
		if !ok {
			continue
		}
		if x, ok := v.(float64); ok {
			out[f.Name] = x
		}
	}
	return out, nil
}

func cliCounts(ctx context.Context, bin, dir string, from, to time.Time) (counts, error) {
	cmd := exec.CommandContext(ctx, bin, "query", "--store", dir, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--format", "csv", queryJSON)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("blueticks query: %v: %s", err, stderr.String())
	}
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 2 {
		return nil, fmt.Errorf("blueticks query printed %q (%v)", out, err)
	}
	c := counts{}
	for i, name := range recs[0] {
		v, err := strconv.ParseFloat(recs[1][i], 64)
		if err != nil {
			return nil, fmt.Errorf("blueticks query: %s = %q", name, recs[1][i])
		}
		c[name] = v
	}
	return c, nil
}

func equalCounts(a, b counts) bool {
	for _, m := range metrics {
		if a[m] != b[m] {
			return false
		}
	}
	return true
}

// storedIDs reads every published segment and counts rows per event id. A segment listed
// but retired before or while DuckDB reads it (compaction, retention) makes it list again.
func storedIDs(t *testing.T, dir string) (ids map[string]int, segments int) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		segs, err := store.ListSegments(dir)
		require.NoError(t, err)
		if len(segs) == 0 {
			return map[string]int{}, 0
		}
		ids, err = countIDs(segs)
		if err != nil && store.IsSegmentGone(err) && attempt < 5 {
			continue
		}
		require.NoError(t, err)
		return ids, len(segs)
	}
}

func countIDs(segs []store.Segment) (map[string]int, error) {
	db, err := store.OpenDuckDB("")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query("SELECT event_id, count(*) FROM read_parquet(" + store.ParquetList(segs) + ") GROUP BY event_id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		ids[id] = n
	}
	return ids, rows.Err()
}

func TestTwoReceiversTwoPluginsOneStore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs receivers, plugins and CLI processes")
	}
	bin, plugin := cli(t), harness.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "store")
	begin := time.Now()

	// Two receivers on one (new, empty) store.
	a := startReceiver(t, "receiver A", bin, dir)
	b := startReceiver(t, "receiver B", bin, dir)

	// Two plugin processes on the same store, as two Grafana replicas would run them.
	p1 := harness.Start(t, exec.Command(plugin), harness.StoreSettings(dir))
	p2 := harness.Start(t, exec.Command(plugin), harness.StoreSettings(dir))

	now := time.Now().UTC()
	from, to := now.AddDate(0, 0, -30), now.Add(time.Hour)
	w := newWorkload(now, 3000)
	rng := rand.New(rand.NewPCG(1, 2))
	t.Logf("workload: %d events in range, %d 60-day-old events; expected %s", len(w.recent), len(w.old), counts(w.want))

	// Readers poll while the writers write: an answer may lag, never exceed the truth, and
	// never go back.
	stopPolling := make(chan struct{})
	var pollWG sync.WaitGroup
	polls := make([]int, 2)
	for i, p := range []*harness.Client{p1, p2} {
		pollWG.Add(1)
		go func() {
			defer pollWG.Done()
			last := counts{}
			for {
				select {
				case <-stopPolling:
					return
				case <-time.After(250 * time.Millisecond):
				}
				c, err := pluginCounts(ctx, p, from, to)
				if err != nil {
					t.Errorf("plugin %d while ingesting: %v", i+1, err)
					return
				}
				polls[i]++
				for _, m := range metrics {
					if c[m] > w.want[m] {
						t.Errorf("plugin %d counted %s = %v > %v: something counted twice", i+1, m, c[m], w.want[m])
					}
					if c[m] < last[m] {
						t.Errorf("plugin %d: %s went back from %v to %v", i+1, m, last[m], c[m])
					}
				}
				last = c
			}
		}()
	}

	// Phase 1: the old events and a third of the rest, through both receivers.
	cut := len(w.recent) / 3
	send(ctx, t, plan(rng, append(append([]map[string]any(nil), w.old...), w.recent[:cut]...), 50, a, b), 6, 10*time.Millisecond)

	// Acknowledged means durable; it is in a published segment, visible to every reader,
	// within seconds (the receivers cut segments from their write-ahead logs every second).
	visible := time.Now()
	for {
		ids, _ := storedIDs(t, dir)
		n := 0
		for _, e := range w.old {
			if ids[e["event_id"].(string)] > 0 {
				n++
			}
		}
		if n == len(w.old) {
			break
		}
		require.Less(t, time.Since(visible), 15*time.Second, "acknowledged events not in published segments after 15 s")
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("phase 1 in published segments %s after its last acknowledgement", time.Since(visible).Round(time.Millisecond))

	// Phase 2: a third receiver starts with --retention-days 30 (it deletes the old events
	// at start, under the compaction lock) while A and B take the rest, compacting, paced
	// over a few seconds so that compaction and retention run while they write.
	c := startReceiver(t, "receiver C (retention)", bin, dir, "--retention-days", "30")
	ingestStart := time.Now()
	rest := plan(rng, w.recent[cut:], 50, a, b)
	send(ctx, t, rest, 6, 5*time.Second*6/time.Duration(len(rest)))
	ingest := time.Since(ingestStart)
	compactions := func(result string) float64 { // every receiver compacts; one at a time holds the lock
		sum := 0.0
		for _, r := range []*receiver{a, b, c} {
			sum += r.metric("blueticks_ingest_compactions_total", `result="`+result+`"`)
		}
		return sum
	}
	mergedDuringIngest := compactions("merged")

	deadline := time.Now().Add(20 * time.Second)
	for c.metric("blueticks_ingest_retention_dropped_events_total", "") < float64(len(w.old)) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}

	// Every reader converges on exactly the expected counts within seconds.
	want := counts(w.want)
	var got1, got2 counts
	var err1, err2 error
	for time.Now().Before(deadline) {
		got1, err1 = pluginCounts(ctx, p1, from, to)
		got2, err2 = pluginCounts(ctx, p2, from, to)
		if err1 == nil && err2 == nil && equalCounts(got1, want) && equalCounts(got2, want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stopPolling)
	pollWG.Wait()
	require.NoError(t, err1)
	require.NoError(t, err2)
	assert.Equal(t, want.String(), got1.String(), "plugin process 1")
	assert.Equal(t, want.String(), got2.String(), "plugin process 2")
	t.Logf("plugins polled %d and %d times while ingesting; both answer %s", polls[0], polls[1], got1)

	// Two independent CLI processes at once.
	var q1, q2 counts
	var qe1, qe2 error
	var qwg sync.WaitGroup
	qwg.Add(2)
	go func() { defer qwg.Done(); q1, qe1 = cliCounts(ctx, bin, dir, from, to) }()
	go func() { defer qwg.Done(); q2, qe2 = cliCounts(ctx, bin, dir, from, to) }()
	qwg.Wait()
	require.NoError(t, qe1)
	require.NoError(t, qe2)
	assert.Equal(t, want.String(), q1.String(), "blueticks query 1")
	assert.Equal(t, want.String(), q2.String(), "blueticks query 2")

	// Both receivers wrote; compaction ran beside the writers; retention deleted exactly
	// the old events.
	wa, wb := a.metric("blueticks_ingest_written_events_total", ""), b.metric("blueticks_ingest_written_events_total", "")
	assert.Positive(t, wa, "receiver A wrote events")
	assert.Positive(t, wb, "receiver B wrote events")
	merged, skipped := compactions("merged"), compactions("skipped")
	for merged == 0 && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(200 * time.Millisecond)
		merged = compactions("merged")
	}
	assert.Positive(t, merged, "compaction merged segments")
	dropped := c.metric("blueticks_ingest_retention_dropped_events_total", "")
	assert.GreaterOrEqual(t, dropped, float64(len(w.old)), "retention dropped the old events")

	// The store itself: every event sent is there, the old ones are gone; duplicates may
	// still be stored (readers drop them; compaction removes them as it merges).
	ids, segs := storedIDs(t, dir)
	lost := 0
	for _, e := range w.recent {
		if ids[e["event_id"].(string)] == 0 {
			lost++
		}
	}
	assert.Zero(t, lost, "events acknowledged but not in the store")
	oldLeft := 0
	rows := 0
	for id, n := range ids {
		rows += n
		if strings.HasPrefix(id, "old-") {
			oldLeft++
		}
	}
	assert.Zero(t, oldLeft, "old events left after retention")
	assert.Equal(t, len(w.recent), len(ids), "distinct event ids in the store")
	retired, _ := os.ReadDir(filepath.Join(dir, store.RetiredDir))
	var bytes int64
	if list, err := store.ListSegments(dir); err == nil {
		for _, s := range list {
			bytes += s.Size
		}
	}
	t.Logf("receivers wrote %v (A) + %v (B) events incl. duplicates; %d segments, %d retired, %d rows for %d ids, %d bytes (%.0f B/event at this size); compactions (by A, B and C) merged %v (%v by the end of phase 2), skipped %v (lock held by another receiver); retention dropped %v rows; phase 2 ingest took %s; whole test %s",
		wa, wb, segs, len(retired), rows, len(ids), bytes, float64(bytes)/float64(len(ids)), merged, mergedDuringIngest, skipped, dropped, ingest.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("receiver A log:\n%s\nreceiver B log:\n%s\nreceiver C log:\n%s", a.log(), b.log(), c.log())
	}
}
