package demo

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// testEnd is a Thursday afternoon (UTC), so the window has a weekly newsletter near its end.
var testEnd = time.Date(2026, 3, 12, 15, 30, 0, 0, time.UTC)

var baseCfg = Config{Events: 50_000, Seed: 42, End: testEnd}

func collect(t testing.TB, cfg Config) []events.Event {
	t.Helper()
	var out []events.Event
	err := Generate(cfg, func(e *events.Event) error {
		out = append(out, *e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	baseOnce sync.Once
	baseEvs  []events.Event
)

func base(t *testing.T) []events.Event {
	baseOnce.Do(func() { baseEvs = collect(t, baseCfg) })
	return baseEvs
}

func key(e *events.Event) string {
	b, _ := json.Marshal(e)
	return string(b)
}

func TestDeterministic(t *testing.T) {
	a := base(t)
	b := collect(t, baseCfg)
	if len(a) != len(b) {
		t.Fatalf("two runs: %d and %d events", len(a), len(b))
	}
	for i := range a {
		if key(&a[i]) != key(&b[i]) {
			t.Fatalf("event %d differs:\n%s\n%s", i, key(&a[i]), key(&b[i]))
		}
	}
	c := collect(t, Config{Events: 50_000, Seed: 43, End: testEnd})
	if key(&a[len(a)/2]) == key(&c[len(c)/2]) {
		t.Fatal("another seed gives the same events")
	}
}

// A later End (same UTC day: the End-anchored features stay put) reproduces every event of
// the earlier run, and adds only events after the earlier End.
func TestLaterEndReproducesHistory(t *testing.T) {
	a := base(t)
	cfg := baseCfg
	cfg.End = testEnd.Add(5*time.Hour + 17*time.Minute)
	b := collect(t, cfg)
	want := map[string]int{}
	for i := range a {
		want[key(&a[i])]++
	}
	got := map[string]int{}
	later := 0
	for i := range b {
		if b[i].TS.After(testEnd) {
			later++
			continue
		}
		got[key(&b[i])]++
	}
	if later == 0 {
		t.Fatal("the later run has nothing after the earlier End")
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("event seen %d times in the earlier run, %d in the later: %s", n, got[k], k)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("later run has %d distinct events before the earlier End, earlier run %d", len(got), len(want))
	}
}

func TestValidCountAndRange(t *testing.T) {
	evs := base(t)
	if n := len(evs); n < 45_000 || n > 55_000 {
		t.Fatalf("%d events, want 50000 ±10%%", n)
	}
	lo := testEnd.Add(-91 * 24 * time.Hour)
	contactRE := regexp.MustCompile(`^c_[0-9a-f]{16}$`)
	types := map[string]int{}
	for i := range evs {
		e := evs[i]
		e.Normalize()
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid event %s: %v", key(&evs[i]), err)
		}
		if e.TS.After(testEnd) || e.TS.Before(lo) {
			t.Fatalf("ts %s outside [%s, %s]", e.TS, lo, testEnd)
		}
		if e.ContactID != "" && !contactRE.MatchString(e.ContactID) {
			t.Fatalf("contact id %q is not pseudonymous", e.ContactID)
		}
		types[e.Type]++
	}
	for _, typ := range events.Types {
		if types[typ] == 0 {
			t.Errorf("no %s event", typ)
		}
	}
	t.Logf("types: %v", types)
}

func TestStatusesAreBare(t *testing.T) {
	for _, e := range base(t) {
		switch e.Type {
		case events.TypeDelivered, events.TypeRead, events.TypeFailed:
			c := e
			c.EventID, c.TS, c.Type, c.MessageID, c.ErrorCode = "", time.Time{}, "", "", nil
			if c != (events.Event{}) {
				t.Fatalf("status carries more than its id, ts, type and message: %s", key(&e))
			}
			if e.Type == events.TypeFailed && e.ErrorCode == nil {
				t.Fatalf("failed without an error code: %s", key(&e))
			}
			if !strings.HasPrefix(e.MessageID, "wamid.") || e.EventID != e.MessageID+":"+e.Type {
				t.Fatalf("status ids: %s", key(&e))
			}
		}
	}
}

func TestContactsAreStable(t *testing.T) {
	seen := map[string][2]string{}
	for _, e := range base(t) {
		if e.Type != events.TypeSent || e.ContactID == "" {
			continue
		}
		cs := [2]string{e.Country, e.Segment}
		if prev, ok := seen[e.ContactID]; ok && prev != cs {
			t.Fatalf("contact %s is %v and %v", e.ContactID, prev, cs)
		}
		seen[e.ContactID] = cs
	}
	if len(seen) < 500 {
		t.Fatalf("only %d contacts", len(seen))
	}
}

// day of a time, as a UTC date string.
func day(ts time.Time) string { return ts.UTC().Format("2006-01-02") }

// firstDelivery maps each message to its earliest delivered/read time.
func firstDelivery(evs []events.Event) map[string]time.Time {
	fd := map[string]time.Time{}
	for _, e := range evs {
		if e.Type == events.TypeDelivered || e.Type == events.TypeRead {
			if t, ok := fd[e.MessageID]; !ok || e.TS.Before(t) {
				fd[e.MessageID] = e.TS
			}
		}
	}
	return fd
}

func TestBlockRateSpike(t *testing.T) {
	evs := base(t)
	delivered := map[string]float64{}
	for _, ts := range firstDelivery(evs) {
		delivered[day(ts)]++
	}
	blocked := map[string]float64{}
	ids := map[string]bool{}
	for _, e := range evs {
		if e.Type == events.TypeBlocked && !ids[e.EventID] {
			ids[e.EventID] = true
			blocked[day(e.TS)]++
		}
	}
	var rates []float64
	for d, n := range delivered {
		if d != day(testEnd) { // the partial last day
			rates = append(rates, blocked[d]/n)
		}
	}
	sort.Float64s(rates)
	median := rates[len(rates)/2]
	spikeDay := day(testEnd.AddDate(0, 0, -spikeDaysAgo))
	spike := blocked[spikeDay] / delivered[spikeDay]
	t.Logf("median daily block rate %.4f, spike day %s %.4f (%v blocked / %v delivered)", median, spikeDay, spike, blocked[spikeDay], delivered[spikeDay])
	if spike < 0.04 || spike <= 4*median {
		t.Fatalf("spike day block rate %.4f, median %.4f", spike, median)
	}
	if median > 0.01 {
		t.Fatalf("baseline block rate %.4f is too high", median)
	}
}

// The last two hours before End have a normal block rate (a short window so they hold
// enough messages to measure).
func TestCalmLastTwoHours(t *testing.T) {
	evs := collect(t, Config{Events: 50_000, Days: 12, Seed: 42, End: testEnd})
	from := testEnd.Add(-2 * time.Hour)
	var d2, b2 float64
	for _, ts := range firstDelivery(evs) {
		if ts.After(from) {
			d2++
		}
	}
	for _, e := range evs {
		if e.Type == events.TypeBlocked && e.TS.After(from) {
			b2++
		}
	}
	t.Logf("last 2 h: %v blocked / %v delivered", b2, d2)
	if d2 < 100 || b2/d2 > 0.02 {
		t.Fatalf("last 2 h: %v blocked / %v delivered", b2, d2)
	}
}

func TestQualityAfterSpike(t *testing.T) {
	spike := testEnd.Truncate(24*time.Hour).AddDate(0, 0, -spikeDaysAgo)
	var states []string
	for _, e := range base(t) {
		if e.Type == events.TypeQualityChanged && e.BusinessNumber == numShop && e.Template == "" && !e.TS.Before(spike) {
			states = append(states, e.Quality)
		}
	}
	if !slices.Contains(states, "YELLOW") || !slices.Contains(states, "RED") || states[len(states)-1] != "GREEN" {
		t.Fatalf("shop number quality after the spike: %v", states)
	}
}

func TestFeedImperfections(t *testing.T) {
	evs := base(t)
	ids := map[string]int{}
	sentSeen := map[string]bool{}
	var dups, late, statusFirst int
	var maxTS time.Time
	for _, e := range evs {
		ids[e.EventID]++
		if ids[e.EventID] == 2 {
			dups++
		}
		if e.TS.Before(maxTS.Add(-time.Minute)) {
			late++
		}
		if e.TS.After(maxTS) {
			maxTS = e.TS
		}
		switch e.Type {
		case events.TypeSent:
			sentSeen[e.MessageID] = true
		case events.TypeDelivered, events.TypeRead, events.TypeFailed:
			if !sentSeen[e.MessageID] {
				statusFirst++
			}
		}
	}
	var orphans int
	for id := range ids {
		if i := strings.LastIndexByte(id, ':'); i > 0 && strings.HasPrefix(id, "wamid.") && id[i+1:] != "sent" && id[i+1:] != "received" && !sentSeen[id[:i]] {
			orphans++
		}
	}
	// Exact duplicates: same id, same content.
	first := map[string]string{}
	for i := range evs {
		k := key(&evs[i])
		if f, ok := first[evs[i].EventID]; ok && f != k {
			t.Fatalf("event id %s reused for different events", evs[i].EventID)
		}
		first[evs[i].EventID] = k
	}
	n := float64(len(evs))
	t.Logf("duplicates %d (%.2f%%), late %d (%.2f%%), status before its sent %d, statuses of unknown messages %d",
		dups, 100*float64(dups)/n, late, 100*float64(late)/n, statusFirst, orphans)
	if float64(dups) < 0.002*n || float64(dups) > 0.01*n {
		t.Errorf("duplicates: %d", dups)
	}
	if float64(late) < 0.005*n || float64(late) > 0.05*n {
		t.Errorf("late events: %d", late)
	}
	if statusFirst == 0 || orphans == 0 {
		t.Errorf("status before its sent: %d, statuses without sent: %d", statusFirst, orphans)
	}
}

func TestABVariantDifference(t *testing.T) {
	evs := base(t)
	variant := map[string]string{}
	for _, e := range evs {
		if e.Type == events.TypeSent && e.Variant != "" {
			variant[e.MessageID] = e.Variant
		}
	}
	delivered := map[string]map[string]bool{"control": {}, "variant_b": {}}
	read := map[string]map[string]bool{"control": {}, "variant_b": {}}
	clicked := map[string]map[string]bool{"control": {}, "variant_b": {}}
	for _, e := range evs {
		id := e.MessageID
		if e.Type == events.TypeClicked {
			id = e.ReplyTo
		}
		v, ok := variant[id]
		if !ok {
			continue
		}
		switch e.Type {
		case events.TypeDelivered:
			delivered[v][id] = true
		case events.TypeRead:
			delivered[v][id] = true
			read[v][id] = true
		case events.TypeClicked:
			clicked[v][id] = true
		}
	}
	rate := func(m map[string]map[string]bool, v string) float64 {
		return float64(len(m[v])) / float64(len(delivered[v]))
	}
	rc, rb := rate(read, "control"), rate(read, "variant_b")
	cc, cb := rate(clicked, "control"), rate(clicked, "variant_b")
	t.Logf("delivered control %d variant_b %d; read %.3f vs %.3f; click %.3f vs %.3f",
		len(delivered["control"]), len(delivered["variant_b"]), rc, rb, cc, cb)
	if rb-rc < 0.02 || cb-cc < 0.01 {
		t.Fatalf("variant_b does not beat control: read %.3f vs %.3f, click %.3f vs %.3f", rb, rc, cb, cc)
	}
}

func TestEmitErrorStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Generate(Config{Events: 20_000, Days: 10, Seed: 1, End: testEnd}, func(*events.Event) error {
		n++
		if n == 100 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 100 {
		t.Fatalf("err %v after %d events", err, n)
	}
}

// Other window lengths keep the count within ±10 %.
func TestCountOtherWindows(t *testing.T) {
	for _, days := range []int{14, 30, 180} {
		n := 0
		if err := Generate(Config{Events: 40_000, Days: days, Seed: 7, End: testEnd}, func(*events.Event) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n < 36_000 || n > 44_000 {
			t.Errorf("Days %d: %d events, want 40000 ±10%%", days, n)
		}
	}
}

// TestCalibration prints events per entity per stream (DEMO_CALIBRATE=1), to update
// streamEPM and blastEPM when behaviour changes.
func TestCalibration(t *testing.T) {
	if os.Getenv("DEMO_CALIBRATE") == "" {
		t.Skip("set DEMO_CALIBRATE=1")
	}
	n := 0
	g := newGen(Config{Events: 2_000_000, Seed: 3, End: testEnd.Truncate(24 * time.Hour).Add(24*time.Hour - time.Microsecond)}, func(*events.Event) error { n++; return nil })
	g.stats = &[256]int{}
	if err := g.run(); err != nil {
		t.Fatal(err)
	}
	days := float64(g.spanUS / usDay)
	for s := 0; s < nStreams; s++ {
		ents := streamShare[s] * g.d * days
		t.Logf("stream %d: %d events, %.0f entities, %.2f per entity (now %.2f)", s, g.stats[s], ents, float64(g.stats[s])/ents, streamEPM[s])
	}
	var units float64
	for _, b := range g.blasts {
		units += b.size * g.d
	}
	t.Logf("blasts: %d events, %.0f messages, %.2f per message (now %.2f)", g.stats[200], units, float64(g.stats[200])/units, blastEPM)
	t.Logf("events %d", n)
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	total := 0
	for i := 0; i < b.N; i++ {
		if err := Generate(Config{Events: 1_000_000, Seed: int64(i), End: testEnd}, func(*events.Event) error { total++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
}
