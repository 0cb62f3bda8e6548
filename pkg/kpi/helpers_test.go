package kpi_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// base is a Monday, 2024-03-04 00:00 UTC. Fixtures place events by day and time from it.
var base = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)

// at is base day 0 at hh:mm UTC.
func at(h, m int) time.Time {
	return base.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// day is base + d days at hh:mm UTC.
func day(d, h, m int) time.Time { return at(h, m).AddDate(0, 0, d) }

type opt func(*events.Event)

func withID(id string) opt            { return func(e *events.Event) { e.EventID = id } }
func withCampaign(c string) opt       { return func(e *events.Event) { e.Campaign = c } }
func withVariant(v string) opt        { return func(e *events.Event) { e.Variant = v } }
func withCountry(c string) opt        { return func(e *events.Event) { e.Country = c } }
func withSender(s string) opt         { return func(e *events.Event) { e.Sender = s } }
func withAgent(a string) opt          { return func(e *events.Event) { e.AgentID = a } }
func withConv(c string) opt           { return func(e *events.Event) { e.ConversationID = c } }
func withReplyTo(m string) opt        { return func(e *events.Event) { e.ReplyTo = m } }
func withPrice(v float64) opt         { return func(e *events.Event) { e.Value = &v } }
func withStep(s string) opt           { return func(e *events.Event) { e.Step = s } }
func withTemplate(t string) opt       { return func(e *events.Event) { e.Template = t } }
func withNumber(n string) opt         { return func(e *events.Event) { e.BusinessNumber = n } }
func withContact(c string) opt        { return func(e *events.Event) { e.ContactID = c } }
func withMessageID(m string) opt      { return func(e *events.Event) { e.MessageID = m } }
func withCode(code int32) opt         { return func(e *events.Event) { e.ErrorCode = &code } }
func withTS(ts time.Time) opt         { return func(e *events.Event) { e.TS = ts } }
func withMessageType(mt string) opt   { return func(e *events.Event) { e.MessageType = mt } }
func withSegmentDim(s string) opt     { return func(e *events.Event) { e.Segment = s } }
func withCategory(c string) opt       { return func(e *events.Event) { e.Category = c } }
func withCurrency(c string) opt       { return func(e *events.Event) { e.Currency = c } }
func withQuality(q string) opt        { return func(e *events.Event) { e.Quality = q } }
func withPricingType(p string) opt    { return func(e *events.Event) { e.PricingType = p } }
func withValue(v float64) opt         { return withPrice(v) }
func withoutSender() opt              { return func(e *events.Event) { e.Sender = "" } }
func withBusinessNumber(n string) opt { return withNumber(n) }

// ev builds one event; an event without an id gets its derived id (events.Normalize) and,
// for types whose derived key could collide in a fixture, a unique one.
func ev(typ string, ts time.Time, opts ...opt) events.Event {
	e := events.Event{Type: typ, TS: ts}
	for _, o := range opts {
		o(&e)
	}
	e.Normalize()
	return e
}

// sent is an outbound message by a campaign (override with withSender).
func sent(msg string, ts time.Time, contact string, opts ...opt) events.Event {
	return ev(events.TypeSent, ts, append([]opt{withMessageID(msg), withContact(contact), withSender("campaign")}, opts...)...)
}
func delivered(msg string, ts time.Time, opts ...opt) events.Event {
	return ev(events.TypeDelivered, ts, append([]opt{withMessageID(msg)}, opts...)...)
}
func read(msg string, ts time.Time, opts ...opt) events.Event {
	return ev(events.TypeRead, ts, append([]opt{withMessageID(msg)}, opts...)...)
}
func failed(msg string, ts time.Time, code int32, opts ...opt) events.Event {
	return ev(events.TypeFailed, ts, append([]opt{withMessageID(msg), withCode(code)}, opts...)...)
}

// received is an inbound message msg from contact.
func received(msg string, ts time.Time, contact string, opts ...opt) events.Event {
	return ev(events.TypeReceived, ts, append([]opt{withMessageID(msg), withContact(contact), withSender("customer")}, opts...)...)
}
func clicked(ts time.Time, contact string, opts ...opt) events.Event {
	return ev(events.TypeClicked, ts, append([]opt{withContact(contact)}, opts...)...)
}
func converted(ts time.Time, contact string, value float64, opts ...opt) events.Event {
	return ev(events.TypeConverted, ts, append([]opt{withContact(contact), withValue(value), withCurrency("EUR")}, opts...)...)
}
func contactEvent(typ string, ts time.Time, contact string, opts ...opt) events.Event {
	return ev(typ, ts, append([]opt{withContact(contact)}, opts...)...)
}
func convEvent(typ string, ts time.Time, conv string, opts ...opt) events.Event {
	return ev(typ, ts, append([]opt{withConv(conv)}, opts...)...)
}
func quality(ts time.Time, number, q string, opts ...opt) events.Event {
	return ev(events.TypeQualityChanged, ts, append([]opt{withNumber(number), withQuality(q)}, opts...)...)
}

// fixture is an engine over a store built from batches (one segment each, in arrival order).
type fixture struct {
	t *testing.T
	e *kpi.Engine
}

func newFixture(t *testing.T, batches ...[]events.Event) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	for _, b := range batches {
		for i := range b {
			require.NoError(t, b[i].Validate(), "fixture event %d (%s)", i, b[i].EventID)
		}
		_, err := w.Append(ctx, b, store.AppendOptions{})
		require.NoError(t, err)
	}
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	e, err := kpi.New(kpi.Options{Source: src, Threads: 2, MemoryLimitMB: 256})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return &fixture{t: t, e: e}
}

func (f *fixture) run(query string, from, to time.Time) data.Frames {
	f.t.Helper()
	frames, err := f.runErr(query, from, to)
	require.NoError(f.t, err, query)
	return frames
}

func (f *fixture) runErr(query string, from, to time.Time) (data.Frames, error) {
	q, err := kpi.ParseQuery([]byte(query))
	if err != nil {
		return nil, err
	}
	return f.e.Run(context.Background(), kpi.Request{Query: q, From: from, To: to, Interval: time.Minute, MaxDataPoints: 1000})
}

// row is one table row: group values (nil: missing) and metric values.
type row struct {
	groups []*string
	vals   map[string]*float64
}

// table runs a table query and returns its rows keyed by the group values joined with
// "|" ("<nil>" for a missing value; "" without groupBy), plus the key order.
func (f *fixture) table(query string, from, to time.Time) (map[string]row, []string) {
	f.t.Helper()
	frames := f.run(query, from, to)
	require.Len(f.t, frames, 1)
	fr := frames[0]
	q, err := kpi.ParseQuery([]byte(query))
	require.NoError(f.t, err)
	out := map[string]row{}
	var order []string
	n, _ := fr.RowLen()
	for r := 0; r < n; r++ {
		rw := row{vals: map[string]*float64{}}
		var parts []string
		for i := range q.GroupBy {
			v := fr.Fields[i].At(r).(*string)
			rw.groups = append(rw.groups, v)
			if v == nil {
				parts = append(parts, "<nil>")
			} else {
				parts = append(parts, *v)
			}
		}
		for _, fl := range fr.Fields[len(q.GroupBy):] {
			rw.vals[fl.Name] = fl.At(r).(*float64)
		}
		k := strings.Join(parts, "|")
		require.NotContains(f.t, out, k, "duplicate group %q", k)
		out[k] = rw
		order = append(order, k)
	}
	return out, order
}

// ts is a time series result: bucket starts and, per group (labels string, "" without
// groupBy), each metric's values.
type ts struct {
	times  []time.Time
	groups map[string]map[string][]*float64
	order  []string
}

func (f *fixture) series(query string, from, to time.Time) ts {
	f.t.Helper()
	frames := f.run(query, from, to)
	out := ts{groups: map[string]map[string][]*float64{}}
	for _, fr := range frames {
		require.Equal(f.t, "time", fr.Fields[0].Name)
		var times []time.Time
		for i := 0; i < fr.Fields[0].Len(); i++ {
			times = append(times, fr.Fields[0].At(i).(time.Time))
		}
		if out.times == nil {
			out.times = times
		} else {
			require.Equal(f.t, out.times, times, "every group has every bucket")
		}
		key := ""
		m := map[string][]*float64{}
		for _, fl := range fr.Fields[1:] {
			key = fl.Labels.String()
			vals := make([]*float64, fl.Len())
			for i := range vals {
				vals[i] = fl.At(i).(*float64)
			}
			m[fl.Name] = vals
		}
		require.NotContains(f.t, out.groups, key)
		out.groups[key] = m
		out.order = append(out.order, key)
	}
	return out
}

// num is shorthand for an expected value; null is an expected null.
func num(v float64) *float64 { return &v }

var null *float64

const eps = 1e-9

// assertVal compares a value with an expected one (nil: null).
func assertVal(t *testing.T, want, got *float64, msgAndArgs ...any) bool {
	t.Helper()
	if want == nil {
		return assert.Nil(t, got, append([]any{"want null, got %v"}, fmtP(got))...)
	}
	if !assert.NotNil(t, got, msgAndArgs...) {
		return false
	}
	return assert.InDelta(t, *want, *got, eps, msgAndArgs...)
}

func fmtP(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// expectRow checks metric values of one table row.
func expectRow(t *testing.T, rows map[string]row, key string, want map[string]*float64) {
	t.Helper()
	r, ok := rows[key]
	if !assert.True(t, ok, "group %q missing; have %v", key, keys(rows)) {
		return
	}
	for m, w := range want {
		assertVal(t, w, r.vals[m], "group %q metric %s", key, m)
	}
}

// expectSeries checks one metric of one group bucket by bucket.
func expectSeries(t *testing.T, s ts, group, metric string, want ...*float64) {
	t.Helper()
	g, ok := s.groups[group]
	if !assert.True(t, ok, "group %q missing; have %v", group, s.order) {
		return
	}
	got := g[metric]
	if !assert.Len(t, got, len(want), "group %q metric %s", group, metric) {
		return
	}
	for i := range want {
		assertVal(t, want[i], got[i], "group %q metric %s bucket %d (%s)", group, metric, i, s.times[i])
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// covered records which test checks the numbers of each catalog metric; TestEveryMetric
// checks it against the catalog and that the named tests exist.
var covered = map[string]string{}

func cover(test string, ids ...string) bool {
	for _, id := range ids {
		covered[id] = test
	}
	return true
}
