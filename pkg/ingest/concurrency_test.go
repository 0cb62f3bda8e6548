package ingest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// postAPI sends NDJSON to a running receiver.
func postAPI(client *http.Client, base, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, base+RouteEvents, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+testAPI)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var buf [512]byte
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	return resp.StatusCode, nil
}

func conversionRows(prefix string, n int, ts time.Time) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"event_id":"%s-%d","ts":%q,"type":"converted","contact_id":"c_%d","value":1,"currency":"EUR"}`+"\n",
			prefix, i, ts.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%50)
	}
	return b.String()
}

// TestPluginQueriesWhileIngesting: the plugin's engine answers queries in a loop on the
// store the receiver writes; every acknowledged event shows up in a query within 5 s and
// no query fails (compaction runs meanwhile too).
func TestPluginQueriesWhileIngesting(t *testing.T) {
	s, _, dir := newTestServer(t, func(c *Config) {
		c.CompactEvery = 300 * time.Millisecond
		c.Compact.MinSegments = 4
		c.Compact.RetiredGrace = time.Second
	})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := ts.Client()
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	code, err := postAPI(client, ts.URL, conversionRows("seed", 5, base))
	require.NoError(t, err)
	require.Equal(t, 200, code)

	eng := newEngine(t, dir)
	from, to := base.Add(-time.Hour), time.Now().Add(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	// The plugin: queries in a loop until the test ends.
	var queries, failures atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conversionsTotal(ctx, eng, from, to); err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			queries.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	acked := 5
	var worst time.Duration
	for round := 0; round < 8; round++ {
		code, err := postAPI(client, ts.URL, conversionRows(fmt.Sprintf("r%d", round), 25, base.Add(time.Duration(round)*time.Minute)))
		require.NoError(t, err)
		require.Equal(t, 200, code)
		acked += 25
		start := time.Now()
		for {
			n, err := conversionsTotal(ctx, eng, from, to)
			require.NoError(t, err)
			if int(n) == acked {
				break
			}
			require.LessOrEqual(t, int(n), acked, "never more than acknowledged")
			if time.Since(start) > 5*time.Second {
				t.Fatalf("round %d: %d of %d acknowledged events visible after 5 s", round, int(n), acked)
			}
			time.Sleep(50 * time.Millisecond)
		}
		worst = max(worst, time.Since(start))
	}
	close(stop)
	wg.Wait()
	assert.Zero(t, failures.Load(), "queries failed while ingesting: %v", firstErr.Load())
	assert.Greater(t, queries.Load(), int64(10))
	t.Logf("%d queries while ingesting; slowest visibility %s", queries.Load(), worst.Round(time.Millisecond))
}
