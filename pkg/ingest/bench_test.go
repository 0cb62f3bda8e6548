package ingest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchIngest drives an in-process receiver on 127.0.0.1 with `clients` concurrent
// clients for b.N requests in all, each built by body(i), and reports events/s, request
// latency percentiles and the peak heap.
func benchIngest(b *testing.B, clients, eventsPerReq int, route string, body func(i int) ([]byte, map[string]string)) {
	s, _, _ := newTestServer(b, func(c *Config) { c.CompactEvery = time.Minute; c.Commit.Interval = 25 * time.Millisecond })
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var peak atomic.Uint64
	stopMem := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopMem:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()

	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				payload, hdr := body(i)
				req, _ := http.NewRequest(http.MethodPost, ts.URL+route, strings.NewReader(string(payload)))
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var buf [256]byte
				for {
					if _, err := resp.Body.Read(buf[:]); err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	close(stopMem)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N*eventsPerReq)/el.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(failed.Load()), "non-2xx")
	b.ReportMetric(peakRSSMB(), "peak-rss-MB")
}

// peakRSSMB is the process's peak resident set (Go heap plus DuckDB), from /proc on Linux.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkIngestEventsAPI: 32 clients posting NDJSON batches of 100 events.
func BenchmarkIngestEventsAPI(b *testing.B) {
	base := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	hdr := map[string]string{"Authorization": "Bearer " + testAPI, "Content-Type": "application/x-ndjson"}
	benchIngest(b, 32, 100, RouteEvents, func(i int) ([]byte, map[string]string) {
		var sb strings.Builder
		for k := 0; k < 100; k++ {
			fmt.Fprintf(&sb, `{"event_id":"b%d-%d","ts":%q,"type":"sent","message_id":"wamid.b%d.%d","contact_id":"c_%d","campaign":"spring","template":"t1","variant":"B","segment":"new_lead","sender":"campaign","category":"marketing"}`+"\n",
				i, k, base, i, k, k)
		}
		return []byte(sb.String()), hdr
	})
}

// BenchmarkIngestWebhook: 64 clients posting signed status webhooks of one status each
// (how Meta delivers them), phone numbers hashed.
func BenchmarkIngestWebhook(b *testing.B) {
	ts := time.Now().Add(-time.Minute).Unix()
	statuses := []string{"sent", "delivered", "read"}
	benchIngest(b, 64, 1, RouteWebhook, func(i int) ([]byte, map[string]string) {
		body := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.w%d","status":%q,"timestamp":"%d","recipient_id":"1650555%04d","biz_opaque_callback_data":"campaign=spring;template=t1;variant=B;segment=new_lead","pricing":{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"}}]}}]}]}`,
			i/3, statuses[i%3], ts, i%10000)
		return []byte(body), map[string]string{"Content-Type": "application/json", "X-Hub-Signature-256": Sign([]byte(testSecret), []byte(body))}
	})
}
