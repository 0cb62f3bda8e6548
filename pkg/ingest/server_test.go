package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

const (
	testSecret = "app-secret-for-tests"
	testVerify = "verify-token-for-tests"
	testAPI    = "api-token-for-tests"
)

func newTestServer(t testing.TB, mod func(*Config)) (*Server, http.Handler, string) {
	dir := t.TempDir()
	cfg := Config{StoreDir: dir, AppSecret: testSecret, VerifyToken: testVerify, APIToken: testAPI,
		Hasher: testHasher(t), CompactEvery: -1, Commit: CommitOptions{Interval: 5 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, s.Handler(), dir
}

// flush publishes what the server acknowledged (it cuts segments about every second on
// its own).
func flush(t testing.TB, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(ctx))
}

func do(h http.Handler, method, target string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func postWebhook(h http.Handler, body []byte, sig string) *httptest.ResponseRecorder {
	hdr := map[string]string{"Content-Type": "application/json"}
	if sig != "" {
		hdr["X-Hub-Signature-256"] = sig
	}
	return do(h, http.MethodPost, RouteWebhook, body, hdr)
}

func postEvents(h http.Handler, body string) *httptest.ResponseRecorder {
	return do(h, http.MethodPost, RouteEvents, []byte(body), map[string]string{"Authorization": "Bearer " + testAPI, "Content-Type": "application/x-ndjson"})
}

// storedEvents reads the store deduplicated by event_id (as readers do): id → type. Like
// the plugin, it lists again when a segment was retired between listing and reading.
func storedEvents(t testing.TB, dir string) map[string]string {
	for attempt := 0; ; attempt++ {
		out, err := readStored(dir)
		if err == nil {
			return out
		}
		if attempt == 5 || !store.IsSegmentGone(err) {
			require.NoError(t, err)
		}
	}
}

func readStored(dir string) (map[string]string, error) {
	segs, err := store.ListSegments(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if len(segs) == 0 {
		return out, nil
	}
	db, err := store.OpenDuckDB("")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query("SELECT event_id, any_value(type), count(*) FROM read_parquet(" + store.ParquetList(segs) + ") GROUP BY event_id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, typ string
		var n int
		if err := rows.Scan(&id, &typ, &n); err != nil {
			return nil, err
		}
		out[id] = typ
	}
	return out, rows.Err()
}

func TestVerifyHandshake(t *testing.T) {
	_, h, _ := newTestServer(t, nil)
	q := func(mode, token, challenge string) string {
		v := url.Values{}
		if mode != "" {
			v.Set("hub.mode", mode)
		}
		if token != "" {
			v.Set("hub.verify_token", token)
		}
		if challenge != "" {
			v.Set("hub.challenge", challenge)
		}
		return RouteWebhook + "?" + v.Encode()
	}
	for _, tc := range []struct {
		name, target string
		code         int
		body         string
	}{
		{"good", q("subscribe", testVerify, "1158201444"), 200, "1158201444"},
		{"wrong token", q("subscribe", "nope", "1158201444"), 403, ""},
		{"wrong mode", q("unsubscribe", testVerify, "1158201444"), 403, ""},
		{"missing token", q("subscribe", "", "1158201444"), 400, ""},
		{"missing challenge", q("subscribe", testVerify, ""), 400, ""},
		{"nothing", RouteWebhook, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, http.MethodGet, tc.target, nil, nil)
			assert.Equal(t, tc.code, rec.Code)
			if tc.body != "" {
				assert.Equal(t, tc.body, rec.Body.String())
			} else {
				assert.NotContains(t, rec.Body.String(), "1158201444", "the challenge is echoed only on success")
			}
		})
	}
}

func TestWebhookSignature(t *testing.T) {
	s, h, dir := newTestServer(t, nil)
	body := readPayload(t, "statuses.json")
	good := Sign([]byte(testSecret), body)
	for _, tc := range []struct {
		name, sig string
		body      []byte
		code      int
	}{
		{"missing", "", body, 401},
		{"wrong secret", Sign([]byte("other"), body), body, 401},
		{"tampered body", good, append(bytes.Clone(body), ' '), 401},
		{"no prefix", strings.TrimPrefix(good, "sha256="), body, 401},
		{"not hex", "sha256=zz", body, 401},
		{"sha1 header value", "sha1=" + strings.TrimPrefix(good, "sha256="), body, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := postWebhook(h, tc.body, tc.sig)
			assert.Equal(t, tc.code, rec.Code)
		})
	}
	flush(t, s)
	assert.Empty(t, storedEvents(t, dir), "nothing unsigned is stored")

	rec := postWebhook(h, body, good)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	flush(t, s)
	stored := storedEvents(t, dir)
	assert.Len(t, stored, 6)
	assert.Equal(t, "sent", stored[wamidSent+":sent"])

	// Meta retries: the same delivery again is the same events.
	require.Equal(t, 200, postWebhook(h, body, good).Code)
	flush(t, s)
	assert.Len(t, storedEvents(t, dir), 6)

	assert.False(t, CheckSignature(nil, body, good), "no secret: nothing verifies")
}

func TestWebhookEveryShapeLandsAndArchives(t *testing.T) {
	s, h, dir := newTestServer(t, nil)
	for _, f := range []string{"statuses.json", "messages.json", "user_preferences.json", "quality.json", "unmapped.json"} {
		body := readPayload(t, f)
		rec := postWebhook(h, body, Sign([]byte(testSecret), body))
		require.Equal(t, 200, rec.Code, f+": "+rec.Body.String())
	}
	flush(t, s)
	stored := storedEvents(t, dir)
	assert.Len(t, stored, 6+7+2+2)
	types := map[string]int{}
	for _, typ := range stored {
		types[typ]++
	}
	assert.Equal(t, map[string]int{"sent": 3, "delivered": 1, "read": 1, "failed": 1, "received": 4, "clicked": 3,
		"opted_out": 1, "opted_in": 1, "quality_changed": 2}, types)

	files, err := filepath.Glob(filepath.Join(dir, RawDir, "*.ndjson"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	assert.Len(t, lines, 4, "system message, limit change, account_update, template_category_update")
	for _, l := range lines {
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &v))
		assert.NotEmpty(t, v["received_at"])
		assert.NotEmpty(t, v["reason"])
	}
	for _, phone := range []string{"16505551234", "16505559999", "15550783881", "Sheena"} {
		assert.NotContains(t, string(raw), phone, "no raw phone number or name in the archive")
	}
}

func TestEventsAPI(t *testing.T) {
	s, h, dir := newTestServer(t, nil)
	t.Run("auth", func(t *testing.T) {
		body := []byte(`{"event_id":"x1","ts":"2026-03-01T10:00:00Z","type":"converted"}`)
		assert.Equal(t, 401, do(h, "POST", RouteEvents, body, nil).Code)
		assert.Equal(t, 401, do(h, "POST", RouteEvents, body, map[string]string{"Authorization": "Bearer wrong"}).Code)
		assert.Equal(t, 401, do(h, "POST", RouteEvents, body, map[string]string{"Authorization": testAPI}).Code)
		assert.Empty(t, storedEvents(t, dir))
	})
	t.Run("ndjson with bad rows", func(t *testing.T) {
		body := strings.Join([]string{
			`{"event_id":"crm-1","ts":"2026-03-01T10:00:00Z","type":"converted","contact_id":"c_1","value":89.9,"currency":"EUR"}`,
			`{"event_id":"bad-type","ts":"2026-03-01T10:00:00Z","type":"purchased"}`,
			``,
			`{"event_id":"bot-1","ts":"2026-03-01T10:01:00Z","type":"conversation_opened","conversation_id":"cv1","sender":"bot"}`,
			`{"event_id":"csat-bad","ts":"2026-03-01T10:02:00Z","type":"csat","conversation_id":"cv1","value":7}`,
			`not json`,
			`{"event_id":"esc-1","ts":"2026-03-01T10:03:00Z","type":"escalated","conversation_id":"cv1","agent_id":"a1"}`,
			`{"event_id":"ph-1","ts":"2026-03-01T10:04:00Z","type":"blocked","phone":"+1 650 555 1234"}`,
			`{"event_id":"ph-2","ts":"2026-03-01T10:04:00Z","type":"blocked","phone":"16505551234","contact_id":"c_2"}`,
			`{"event_id":"sent-1","ts":"2026-03-01T09:00:00Z","type":"sent","message_id":"wamid.S1","campaign":"spring","template":"t","variant":"B","segment":"inactive","sender":"campaign","wa_id":"16505551234"}`,
			`{"ts":"2026-03-01T10:05:00Z","type":"resolved"}`,
		}, "\n")
		rec := postEvents(h, body)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		var resp EventsResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
		assert.Equal(t, 5, resp.Accepted)
		assert.Equal(t, 5, resp.RejectedCount)
		reasons := map[int]string{}
		for _, r := range resp.Rejected {
			reasons[r.Row] = r.Reason
		}
		assert.Contains(t, reasons[2], `type "purchased"`)
		assert.Contains(t, reasons[5], "csat value must be a score from 1 to 5")
		assert.Contains(t, reasons[6], "not a JSON object")
		assert.Contains(t, reasons[9], "not both")
		assert.Contains(t, reasons[11], "conversation_id is required")
		assert.Equal(t, "csat-bad", resp.Rejected[1].EventID)
		assert.NotContains(t, rec.Body.String(), "5551234")

		flush(t, s)
		stored := storedEvents(t, dir)
		assert.Len(t, stored, 5)
		for _, id := range []string{"crm-1", "bot-1", "esc-1", "ph-1", "sent-1"} {
			assert.Contains(t, stored, id)
		}
	})
	t.Run("json array and hashed phone", func(t *testing.T) {
		rec := postEvents(h, `[{"event_id":"nps-1","ts":"2026-03-01T11:00:00Z","type":"nps","conversation_id":"cv1","value":9},
			{"event_id":"ab-1","ts":"2026-03-01T11:00:00Z","type":"abandoned","conversation_id":"cv2","step":"address"}]`)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		assert.JSONEq(t, `{"accepted":2,"rejected_count":0}`, rec.Body.String())
		flush(t, s)

		db, err := store.OpenDuckDB("")
		require.NoError(t, err)
		defer db.Close()
		segs, _ := store.ListSegments(dir)
		var contact string
		require.NoError(t, db.QueryRow("SELECT contact_id FROM read_parquet("+store.ParquetList(segs)+") WHERE event_id='ph-1'").Scan(&contact))
		assert.Equal(t, contactOf(t, testPhone), contact, "the API hashes phone like the webhook")
	})
	t.Run("all rejected", func(t *testing.T) {
		rec := postEvents(h, `{"event_id":"z","type":"sent"}`)
		assert.Equal(t, 422, rec.Code)
	})
	t.Run("malformed bodies", func(t *testing.T) {
		assert.Equal(t, 400, postEvents(h, "").Code)
		assert.Equal(t, 400, postEvents(h, `[{"a":1},`).Code)
	})
}

func TestLimits(t *testing.T) {
	_, h, _ := newTestServer(t, func(c *Config) { c.MaxEventsBytes = 200; c.MaxRows = 2; c.MaxWebhookBytes = 100 })
	rec := postEvents(h, strings.Repeat(" ", 300))
	assert.Equal(t, 413, rec.Code)
	rows := `{"ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}` + "\n"
	assert.Equal(t, 413, postEvents(h, rows+rows+rows).Code, "more rows than allowed")
	body := readPayload(t, "statuses.json")
	assert.Equal(t, 413, postWebhook(h, body, Sign([]byte(testSecret), body)).Code)
}

func TestRoutesOffWithoutSecrets(t *testing.T) {
	_, h, _ := newTestServer(t, func(c *Config) { c.AppSecret, c.VerifyToken, c.APIToken = "", "", "" })
	assert.Equal(t, 404, do(h, "GET", RouteWebhook+"?hub.mode=subscribe&hub.verify_token=&hub.challenge=1", nil, nil).Code)
	assert.Equal(t, 404, do(h, "POST", RouteWebhook, []byte("{}"), nil).Code)
	assert.Equal(t, 404, do(h, "POST", RouteEvents, []byte("{}"), map[string]string{"Authorization": "Bearer "}).Code)
	assert.Equal(t, 405, do(h, "PUT", RouteEvents, nil, nil).Code)
}

func TestQueueFullAnswers429(t *testing.T) {
	s, h, _ := newTestServer(t, func(c *Config) { c.Commit.MaxQueueEvents = 3 })
	// Hold the commit: fill the queue directly.
	s.commit.mu.Lock()
	s.commit.qEvents = 3
	s.commit.mu.Unlock()
	rec := postEvents(h, `{"event_id":"q1","ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}`)
	assert.Equal(t, 429, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	s.commit.mu.Lock()
	s.commit.qEvents = 0
	s.commit.mu.Unlock()
	assert.Equal(t, 413, postEvents(h, strings.Repeat(`{"ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}`+"\n", 4)).Code,
		"a request larger than the whole queue can never fit")
}

func TestHealthAndMetrics(t *testing.T) {
	s, h, _ := newTestServer(t, nil)
	require.Equal(t, 200, postEvents(h, `{"event_id":"m1","ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}`).Code)
	postEvents(h, `{"event_id":"m2","type":"blocked"}`)
	postWebhook(h, []byte("{}"), "sha256=00")
	flush(t, s)
	rec := do(h, "GET", RouteHealth, nil, nil)
	assert.Equal(t, 200, rec.Code)
	assert.Contains(t, rec.Body.String(), `"status":"ok"`)
	rec = do(h, "GET", RouteMetrics, nil, nil)
	require.Equal(t, 200, rec.Code)
	m := rec.Body.String()
	for _, want := range []string{
		`blueticks_ingest_received_events_total{source="api"} 1`,
		`blueticks_ingest_rejected_total{reason="invalid_row"} 1`,
		`blueticks_ingest_rejected_total{reason="signature_invalid"} 1`,
		`blueticks_ingest_written_events_total 1`,
		`blueticks_ingest_write_seconds_count`,
		`blueticks_ingest_lag_seconds`,
		`blueticks_ingest_request_seconds_bucket{code="200",route="events"`,
		`go_goroutines`,
	} {
		assert.Contains(t, m, want)
	}
	assert.NotContains(t, m, testAPI)
}

// TestGroupCommit: concurrent requests share segments, and every acknowledged event is
// stored exactly once.
func TestGroupCommit(t *testing.T) {
	s, h, dir := newTestServer(t, func(c *Config) { c.Commit.Interval = 30 * time.Millisecond })
	const clients, perClient = 16, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				id := fmt.Sprintf("g-%d-%d", c, i)
				rec := postEvents(h, fmt.Sprintf(`{"event_id":%q,"ts":"2026-03-01T10:00:00Z","type":"converted","contact_id":"c_%d","value":1}`, id, c))
				if rec.Code == 200 {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}(c)
	}
	wg.Wait()
	assert.Len(t, acked, clients*perClient)
	flush(t, s)
	stored := storedEvents(t, dir)
	for id := range acked {
		assert.Contains(t, stored, id)
	}
	segs, _ := store.ListSegments(dir)
	assert.Less(t, len(segs), clients*perClient/2, "requests share commits")
}

func TestGracefulCloseFlushes(t *testing.T) {
	s, h, dir := newTestServer(t, func(c *Config) { c.Commit.Interval = 200 * time.Millisecond })
	// One commit now, so the next waits for the interval.
	require.Equal(t, 200, postEvents(h, `{"event_id":"f0","ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}`).Code)
	done := make(chan int)
	go func() {
		done <- postEvents(h, `{"event_id":"f1","ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}`).Code
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, s.Close())
	assert.Equal(t, 200, <-done)
	assert.Contains(t, storedEvents(t, dir), "f1")
	assert.Equal(t, 503, postEvents(h, `{"event_id":"f2","ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}`).Code)
}
