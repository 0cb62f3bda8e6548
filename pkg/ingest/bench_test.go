package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
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
// latency percentiles, the peak heap (above what the benchmark holds before it starts) and
// the CPU time per request of the whole process. The receiver runs with the defaults of
// `blueticks serve` (WAL group commit, a segment cut every second, compaction every
// minute), except --max-in-flight = clients. With precompute the bodies (and their
// signatures) are built before the clock starts, so the clients' own work is only HTTP.
// The clients use net/http; BLUETICKS_BENCH_CLIENT=raw gives them a lean HTTP/1.1 client
// instead (pre-built request, minimal answer parsing), closer to a load generator on
// another machine: the two CPUs go to the receiver.
func benchIngest(b *testing.B, clients, eventsPerReq int, route string, precompute bool, body func(i int) ([]byte, map[string]string)) {
	s, _, _ := newTestServer(b, func(c *Config) {
		c.CompactEvery = time.Minute
		c.Commit = CommitOptions{}
		c.MaxInFlight = clients
	})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	type prepared struct {
		body []byte
		hdr  map[string]string
	}
	var pre []prepared
	if precompute {
		pre = make([]prepared, b.N)
		for i := range pre {
			pre[i].body, pre[i].hdr = body(i)
		}
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base) // the prepared bodies: not the receiver's

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
	cpu0 := processCPU()
	start := time.Now()
	raw := os.Getenv("BLUETICKS_BENCH_CLIENT") == "raw"
	for c := 0; c < clients; c++ {
		wg.Add(1)
		if raw {
			go func(c int) {
				defer wg.Done()
				rc, err := newRawClient(ts.Listener.Addr().String())
				if err != nil {
					failed.Add(1)
					return
				}
				defer rc.close()
				for {
					i := int(next.Add(1)) - 1
					if i >= b.N {
						return
					}
					var payload []byte
					var hdr map[string]string
					if pre != nil {
						payload, hdr = pre[i].body, pre[i].hdr
					} else {
						payload, hdr = body(i)
					}
					t0 := time.Now()
					code, err := rc.post(route, hdr, payload)
					if err != nil {
						failed.Add(1)
						if rc, err = newRawClient(ts.Listener.Addr().String()); err != nil {
							return
						}
						continue
					}
					if code != 200 {
						failed.Add(1)
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			}(c)
			continue
		}
		go func(c int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				var payload []byte
				var hdr map[string]string
				if pre != nil {
					payload, hdr = pre[i].body, pre[i].hdr
				} else {
					payload, hdr = body(i)
				}
				req, _ := http.NewRequest(http.MethodPost, ts.URL+route, bytes.NewReader(payload))
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
	cpu := processCPU() - cpu0
	b.StopTimer()
	close(stopMem)
	// Every acknowledged event reaches a segment (not timed: visibility, not acknowledgement).
	fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		b.Fatal(err)
	}
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
	if os.Getenv("BLUETICKS_BENCH_VERBOSE") != "" {
		mfs, _ := s.Metrics().Registry().Gather()
		for _, mf := range mfs {
			if h := mf.GetMetric(); len(h) == 1 && h[0].GetHistogram() != nil {
				hh := h[0].GetHistogram()
				if hh.GetSampleCount() > 0 {
					b.Logf("%s: n=%d mean=%.3f ms", mf.GetName(), hh.GetSampleCount(), 1000*hh.GetSampleSum()/float64(hh.GetSampleCount()))
				}
			}
		}
	}
	b.ReportMetric(float64(b.N*eventsPerReq)/el.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(max(peak.Load(), base.HeapInuse)-base.HeapInuse)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(failed.Load()), "non-2xx")
	b.ReportMetric(peakRSSMB(), "peak-rss-MB")
	// CPU of the whole process (clients, server, flusher) per request: what the load of a
	// shared machine does not change much.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/req")
}

// rawClient is a lean HTTP/1.1 keep-alive client (BLUETICKS_BENCH_CLIENT=raw): one
// write of the request, a minimal parse of the answer. Like a load generator on another
// machine, it leaves the CPUs to the receiver.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func newRawClient(addr string) (*rawClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 4096)}, nil
}

func (c *rawClient) close() { c.conn.Close() }

func (c *rawClient) post(route string, hdr map[string]string, body []byte) (int, error) {
	b := append(c.buf[:0], "POST "+route+" HTTP/1.1\r\nHost: 127.0.0.1\r\n"...)
	for k, v := range hdr {
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.buf = b
	if _, err := c.conn.Write(b); err != nil {
		return 0, err
	}
	status, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(status) < 12 {
		return 0, fmt.Errorf("bad status line %q", status)
	}
	code, _ := strconv.Atoi(string(status[9:12]))
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("answer without Content-Length")
	}
	if _, err := c.br.Discard(length); err != nil {
		return 0, err
	}
	return code, nil
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
	benchIngest(b, 32, 100, RouteEvents, false, func(i int) ([]byte, map[string]string) {
		var sb strings.Builder
		for k := 0; k < 100; k++ {
			fmt.Fprintf(&sb, `{"event_id":"b%d-%d","ts":%q,"type":"sent","message_id":"wamid.b%d.%d","contact_id":"c_%d","campaign":"spring","template":"t1","variant":"B","segment":"new_lead","sender":"campaign","category":"marketing"}`+"\n",
				i, k, base, i, k, k)
		}
		return []byte(sb.String()), hdr
	})
}

// BenchmarkIngestWebhook: 64 and 256 clients posting signed status webhooks of one status
// each (how Meta delivers them), phone numbers hashed. Run one size with
// -bench 'IngestWebhook/clients=256'. Each client builds and signs its bodies in the timed
// loop (BLUETICKS_BENCH_PRECOMPUTE=1: all before the clock starts; they then stay on the
// heap, which makes the garbage collector's peaks, and so peak-heap-MB, larger).
func BenchmarkIngestWebhook(b *testing.B) {
	ts := time.Now().Add(-time.Minute).Unix()
	statuses := []string{"sent", "delivered", "read"}
	for _, clients := range []int{64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchIngest(b, clients, 1, RouteWebhook, os.Getenv("BLUETICKS_BENCH_PRECOMPUTE") == "1", func(i int) ([]byte, map[string]string) {
				body := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.w%d","status":%q,"timestamp":"%d","recipient_id":"1650555%04d","biz_opaque_callback_data":"campaign=spring;template=t1;variant=B;segment=new_lead","pricing":{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"}}]}}]}]}`,
					i/3, statuses[i%3], ts, i%10000)
				return []byte(body), map[string]string{"Content-Type": "application/json", "X-Hub-Signature-256": Sign([]byte(testSecret), []byte(body))}
			})
		})
	}
}
