package kpi_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
)

// SPEC 5 "Identity and duplicates": dedup by event_id across segments, first arrival wins;
// the first sent row of a message (in arrival order) gives its send time and dimensions.
func TestDedupAcrossSegments(t *testing.T) {
	f := newFixture(t,
		[]events.Event{
			sent("m1", at(10, 0), "k1", withID("s1"), withCampaign("spring"), withPrice(1)),
			delivered("m1", at(10, 1), withID("d1")),
			received("in1", at(10, 30), "k1", withID("r1")),
		},
		[]events.Event{
			// same event id, other content: dropped.
			sent("m1", at(12, 0), "k1", withID("s1"), withCampaign("dup"), withPrice(100)),
			received("in9", at(12, 0), "k9", withID("r1")),
			// a second sent row for m1 with its own id and an earlier ts: the first arrival
			// still gives the send time and dimensions, and the message counts once.
			sent("m1", at(9, 0), "k1", withID("s2"), withCampaign("summer"), withPrice(5)),
		},
	)
	s := f.series(`{"queryType":"timeseries","metrics":["sent","delivered","cost","received"],"groupBy":["campaign"],"bucket":"1h"}`, at(9, 0), at(13, 0))
	// Only spring has numbers. (f_evt holds every event row, so the dropped second sent
	// row may still surface as an all-zero "summer" group of the event metric received.)
	for _, g := range s.order {
		if g == `campaign=spring` {
			continue
		}
		for m, vals := range s.groups[g] {
			for i, v := range vals {
				assertVal(t, num(0), v, "group %s metric %s bucket %d", g, m, i)
			}
		}
	}
	// buckets 09, 10, 11, 12: m1 at 10:00 under spring.
	expectSeries(t, s, `campaign=spring`, "sent", num(0), num(1), num(0), num(0))
	expectSeries(t, s, `campaign=spring`, "delivered", num(0), num(1), num(0), num(0))
	expectSeries(t, s, `campaign=spring`, "cost", num(0), num(1), num(0), num(0))
	// r1 at 10:30 once (the 12:00 copy with the same id is dropped), credited to m1.
	expectSeries(t, s, `campaign=spring`, "received", num(0), num(1), num(0), num(0))
}

// SPEC 5: sources without ids get a derived one (message_id + status, inbound message_id),
// so the same status or inbound message by webhook and again by CSV is one event.
func TestDerivedIDs(t *testing.T) {
	webhook := []events.Event{
		sent("m1", at(10, 0), "k1", withCampaign("spring")),
		delivered("m1", at(10, 5)),
		received("in1", sec(10, 59, 59), "k1"),
	}
	for _, e := range webhook {
		require.NotEmpty(t, e.EventID)
	}
	// The CSV export: same rows, timestamps rounded differently, upper-case type and
	// sender normalised; ids derived again.
	csv := []events.Event{
		ev("DELIVERED", at(10, 6), withMessageID("m1")),
		ev("Received", at(11, 0), withMessageID("in1"), withContact("k1"), withSender("Customer")),
	}
	assert.Equal(t, webhook[1].EventID, csv[0].EventID)
	assert.Equal(t, webhook[2].EventID, csv[1].EventID)
	assert.Equal(t, "m1:delivered", events.DerivedID(&webhook[1]))
	assert.Equal(t, "in1:received", events.DerivedID(&webhook[2]))
	f := newFixture(t, webhook, csv)
	s := f.series(`{"queryType":"timeseries","metrics":["received","deliveries","delivered"],"bucket":"1h"}`, at(10, 0), at(12, 0))
	// in1 counts once, at the first arrival's time (10:59:59).
	expectSeries(t, s, "", "received", num(1), num(0))
	expectSeries(t, s, "", "deliveries", num(1), num(0))
	expectSeries(t, s, "", "delivered", num(1), num(0))
}

// SPEC 1/5: status events without dimensions are attributed to the message's dimensions;
// failures group by the event's own error code; event-time counts inherit too.
func TestStatusesTakeMessageDimensions(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(10, 0), "k1", withCampaign("spring"), withCountry("IT"), withTemplate("t1"), withVariant("A"),
			withSegmentDim("new_lead"), withCategory("marketing"), withNumber("n1"), withPricingType("regular")),
		delivered("m1", at(10, 1)), read("m1", at(10, 2)),
		sent("m2", at(10, 0), "k2", withCampaign("spring"), withCountry("DE")),
		failed("m2", at(10, 1), 131049),
	})
	from, to := base, base.AddDate(0, 0, 1)
	for _, dim := range []string{"campaign", "country", "template", "variant", "segment", "category", "business_number", "pricing_type"} {
		rows, _ := f.table(`{"queryType":"table","metrics":["delivered","read","deliveries"],"groupBy":["`+dim+`"]}`, from, to)
		want := map[string]string{"campaign": "spring", "country": "IT", "template": "t1", "variant": "A", "segment": "new_lead",
			"category": "marketing", "business_number": "n1", "pricing_type": "regular"}[dim]
		expectRow(t, rows, want, map[string]*float64{"delivered": num(1), "read": num(1), "deliveries": num(1)})
	}
	rows, _ := f.table(`{"queryType":"table","metrics":["failed","failure_rate"],"groupBy":["country","error_code"]}`, from, to)
	expectRow(t, rows, "DE|131049", map[string]*float64{"failed": num(1), "failure_rate": num(1)})
	expectRow(t, rows, "IT|<nil>", map[string]*float64{"failed": num(0), "failure_rate": num(0)})
}

// SPEC 5: a message whose statuses arrive but whose sent is not stored is left out of the
// message cohort but counts in event-time denominators (deliveries, block_rate).
func TestStatusesWithoutSent(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(10, 0), "k1"), delivered("m1", at(10, 1)),
		delivered("ghost", at(10, 2)), read("ghost", at(10, 3)), failed("ghost2", at(10, 3), 131026),
		contactEvent(events.TypeBlocked, at(11, 0), "k9"),
	})
	rows, _ := f.table(`{"queryType":"table","metrics":["sent","delivered","read","failed","delivery_rate","deliveries","block_rate"]}`, base, base.AddDate(0, 0, 1))
	// cohort: m1 only; deliveries m1 and ghost = 2; block 1/2.
	expectRow(t, rows, "", map[string]*float64{"sent": num(1), "delivered": num(1), "read": num(0), "failed": num(0),
		"delivery_rate": num(1), "deliveries": num(2), "block_rate": num(0.5)})
}

// SPEC 5 "Late events": events are placed by their own ts whatever their arrival order; a
// status appended before its sent still counts.
func TestLateAndOutOfOrderArrival(t *testing.T) {
	f := newFixture(t,
		[]events.Event{read("m1", at(10, 5)), clicked(at(10, 6), "k1", withReplyTo("m1"))},
		[]events.Event{delivered("m1", at(10, 1))},
		[]events.Event{sent("m1", at(10, 0), "k1", withCampaign("spring"))},
		// a late block on day 0 arriving last
		[]events.Event{contactEvent(events.TypeBlocked, at(10, 30), "k1")},
	)
	rows, _ := f.table(`{"queryType":"table","metrics":["sent","delivered","read","clicks","click_rate","deliveries","blocked","block_rate"],"groupBy":["campaign"]}`, base, base.AddDate(0, 0, 1))
	expectRow(t, rows, "spring", map[string]*float64{"sent": num(1), "delivered": num(1), "read": num(1), "clicks": num(1),
		"click_rate": num(1), "deliveries": num(1), "blocked": num(1), "block_rate": num(1)})
	// The delivery counts at the earliest delivered/read time (10:01), in the 10:00 hour.
	s := f.series(`{"queryType":"timeseries","metrics":["deliveries"],"bucket":"1h"}`, at(9, 0), at(11, 0))
	expectSeries(t, s, "", "deliveries", num(0), num(1))
}

// SPEC 5 "Delivered": replies and clicks make a message delivered and numerators count
// delivered messages only; repeated replies, clicks and conversions count once per
// message: no message-cohort rate exceeds 1.
func TestRatesNeverExceedOne(t *testing.T) {
	f := newFixture(t, []events.Event{
		// m1: no status, two replies, three clicks, two conversions.
		sent("m1", at(10, 0), "k1", withCampaign("spring")),
		received("in1", at(10, 10), "k1"), received("in2", at(10, 20), "k1", withReplyTo("m1")),
		clicked(at(10, 11), "k1"), clicked(at(10, 12), "k1"), clicked(at(10, 13), "k1", withReplyTo("m1")),
		converted(at(11, 0), "k1", 10), converted(at(12, 0), "k1", 5, withReplyTo("m1")),
		// m2: read twice, delivered twice.
		sent("m2", at(10, 0), "k2", withCampaign("spring")),
		read("m2", at(10, 2), withID("x1")), read("m2", at(10, 3), withID("x2")),
		delivered("m2", at(10, 1), withID("x3")), delivered("m2", at(10, 4), withID("x4")),
		// m3: failed only, then converted by last touch (undelivered).
		sent("m3", at(10, 0), "k3", withCampaign("spring")), failed("m3", at(10, 1), 131026),
		converted(at(10, 30), "k3", 7),
	})
	rows, _ := f.table(`{"queryType":"table","metrics":["delivered","delivery_rate","read_rate","failure_rate","click_rate","reply_rate","conversion_rate","conversions","revenue"],"groupBy":["campaign"]}`, base, base.AddDate(0, 0, 1))
	// delivered m1 (by reply/click), m2 = 2 of 3; read m2 = 1/2; failed 1/3; clicked m1 1/2;
	// replied m1 1/2; converted delivered m1 1/2 (m3's conversion is not in the rate);
	// conversions 3, revenue 22.
	expectRow(t, rows, "spring", map[string]*float64{
		"delivered": num(2), "delivery_rate": num(2.0 / 3), "read_rate": num(0.5), "failure_rate": num(1.0 / 3),
		"click_rate": num(0.5), "reply_rate": num(0.5), "conversion_rate": num(0.5), "conversions": num(3), "revenue": num(22),
	})
	for _, r := range rows {
		for id, v := range r.vals {
			if m, _ := kpi.LookupMetric(id); m.Kind == kpi.KindRate && v != nil {
				assert.LessOrEqual(t, *v, 1.0, id)
				assert.GreaterOrEqual(t, *v, 0.0, id)
			}
		}
	}
}

// SPEC 5 "Crediting": window edges for replies and clicks (24 h) and conversions (7 d).
func TestCreditingWindowEdges(t *testing.T) {
	cases := []struct {
		name     string
		event    func(ts time.Time) events.Event
		after    time.Duration
		metric   string
		credited bool
	}{
		{"reply at 0 s", func(ts time.Time) events.Event { return received("in", ts, "k1") }, 0, "reply_rate", true},
		{"reply at 24 h", func(ts time.Time) events.Event { return received("in", ts, "k1") }, 24 * time.Hour, "reply_rate", true},
		{"reply at 24 h + 1 s", func(ts time.Time) events.Event { return received("in", ts, "k1") }, 24*time.Hour + time.Second, "reply_rate", false},
		{"click at 24 h", func(ts time.Time) events.Event { return clicked(ts, "k1") }, 24 * time.Hour, "click_rate", true},
		{"click at 24 h + 1 s", func(ts time.Time) events.Event { return clicked(ts, "k1") }, 24*time.Hour + time.Second, "click_rate", false},
		{"conversion at 7 d", func(ts time.Time) events.Event { return converted(ts, "k1", 1) }, 7 * 24 * time.Hour, "conversion_rate", true},
		{"conversion at 7 d + 1 s", func(ts time.Time) events.Event { return converted(ts, "k1", 1) }, 7*24*time.Hour + time.Second, "conversion_rate", false},
		{"event before the send", func(ts time.Time) events.Event { return received("in", ts, "k1") }, -time.Second, "reply_rate", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, []events.Event{
				sent("m1", at(10, 0), "k1", withCampaign("spring")), delivered("m1", at(10, 0)),
				c.event(at(10, 0).Add(c.after)),
			})
			rows, _ := f.table(`{"queryType":"table","metrics":["`+c.metric+`"],"groupBy":["campaign"]}`, base, base.AddDate(0, 0, 10))
			want := 0.0
			if c.credited {
				want = 1
			}
			expectRow(t, rows, "spring", map[string]*float64{c.metric: num(want)})
		})
	}
}

// SPEC 5 "Filters and limits": in never matches a missing value; not_in keeps it; an
// empty list or All removes the filter.
func TestFilters(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(10, 0), "k1", withCountry("IT")), sent("m2", at(10, 0), "k2", withCountry("IT")),
		sent("m3", at(10, 0), "k3", withCountry("DE")),
		sent("m4", at(10, 0), "k4"), // no country
	})
	cases := []struct {
		filter string
		want   float64
	}{
		{`{"dimension":"country","op":"in","values":["IT"]}`, 2},
		{`{"dimension":"country","op":"in","values":["IT","DE"]}`, 3},
		{`{"dimension":"country","values":["DE"]}`, 1}, // op defaults to in
		{`{"dimension":"country","op":"not_in","values":["IT"]}`, 2},
		{`{"dimension":"country","op":"not_in","values":["IT","DE"]}`, 1},
		{`{"dimension":"country","op":"in","values":[]}`, 4},
		{`{"dimension":"country","op":"in","values":["$__all"]}`, 4},
		{`{"dimension":"country","op":"in","values":["FR"]}`, 0},
	}
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			s := f.series(`{"queryType":"timeseries","metrics":["sent"],"bucket":"1d","filters":[`+c.filter+`]}`, base, base.AddDate(0, 0, 1))
			expectSeries(t, s, "", "sent", num(c.want))
		})
	}
}

// SPEC 3/5: limit ranks groups by the first metric over the whole range, ties by name.
func TestLimitRanking(t *testing.T) {
	var evs []events.Event
	add := func(campaign string, n int, ts time.Time) {
		for i := 0; i < n; i++ {
			id := campaign + ts.Format("1504") + string(rune('a'+i))
			evs = append(evs, sent(id, ts, "k"+id, withCampaign(campaign)))
		}
	}
	// d: 5 in the first hour only; b, a: 3 each (tie, a first); c: 4 in the last hour only.
	add("d", 5, at(10, 0))
	add("b", 3, at(11, 0))
	add("a", 2, at(10, 0))
	add("a", 1, at(12, 0))
	add("c", 4, at(12, 0))
	f := newFixture(t, evs)
	s := f.series(`{"queryType":"timeseries","metrics":["sent"],"groupBy":["campaign"],"bucket":"1h","limit":3}`, at(10, 0), at(13, 0))
	assert.Equal(t, []string{"campaign=d", "campaign=c", "campaign=a"}, s.order)
	expectSeries(t, s, "campaign=d", "sent", num(5), num(0), num(0))
	_, order := f.table(`{"queryType":"table","metrics":["sent"],"groupBy":["campaign"],"limit":4}`, at(10, 0), at(13, 0))
	assert.Equal(t, []string{"d", "c", "a", "b"}, order)
	_, order = f.table(`{"queryType":"table","metrics":["sent"],"groupBy":["campaign"],"limit":1}`, at(10, 0), at(13, 0))
	assert.Equal(t, []string{"d"}, order)
}

// SPEC 2/5: an empty bucket reads 0 for counts and null for rates; every group returned
// by a time series has every bucket.
func TestEmptyBucketsAndEveryGroupHasEveryBucket(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(10, 0), "k1", withCampaign("a")), delivered("m1", at(10, 1)),
		sent("m2", at(12, 0), "k2", withCampaign("b")),
	})
	s := f.series(`{"queryType":"timeseries","metrics":["sent","delivery_rate","read_rate","cost","response_time"],"groupBy":["campaign"],"bucket":"1h"}`, at(10, 0), at(13, 0))
	require.Len(t, s.times, 3)
	assert.Equal(t, []time.Time{at(10, 0), at(11, 0), at(12, 0)}, s.times)
	expectSeries(t, s, "campaign=a", "sent", num(1), num(0), num(0))
	expectSeries(t, s, "campaign=a", "delivery_rate", num(1), null, null)
	expectSeries(t, s, "campaign=a", "read_rate", num(0), null, null)
	expectSeries(t, s, "campaign=a", "cost", num(0), num(0), num(0))
	expectSeries(t, s, "campaign=a", "response_time", null, null, null)
	expectSeries(t, s, "campaign=b", "sent", num(0), num(0), num(1))
	expectSeries(t, s, "campaign=b", "delivery_rate", null, null, num(0))
	expectSeries(t, s, "campaign=b", "read_rate", null, null, null)

	// Nothing in range at all: one series of zeros / nulls, and a table row of zeros.
	s = f.series(`{"queryType":"timeseries","metrics":["sent","delivery_rate"],"bucket":"1h"}`, day(2, 0, 0), day(2, 2, 0))
	expectSeries(t, s, "", "sent", num(0), num(0))
	expectSeries(t, s, "", "delivery_rate", null, null)
	rows, _ := f.table(`{"queryType":"table","metrics":["sent","delivery_rate"]}`, day(2, 0, 0), day(2, 2, 0))
	expectRow(t, rows, "", map[string]*float64{"sent": num(0), "delivery_rate": null})
}

// SPEC 5: rows that lack a grouped dimension form their own group: null in tables and
// label (none) in series.
func TestMissingDimensionGroup(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(10, 0), "k1", withCampaign("a")), sent("m2", at(10, 0), "k2"),
	})
	s := f.series(`{"queryType":"timeseries","metrics":["sent"],"groupBy":["campaign"],"bucket":"1d"}`, base, base.AddDate(0, 0, 1))
	expectSeries(t, s, "campaign=a", "sent", num(1))
	expectSeries(t, s, "campaign="+kpi.NoneLabel, "sent", num(1))
	rows, _ := f.table(`{"queryType":"table","metrics":["sent"],"groupBy":["campaign"]}`, base, base.AddDate(0, 0, 1))
	require.Contains(t, rows, "<nil>")
	assert.Nil(t, rows["<nil>"].groups[0])
}

// SPEC 5 "Dimensions of an event": message dimensions come from the message the event is
// about (message_id) first; last touch only when it names none. A block reported against
// m1 belongs to m1's campaign even if a later campaign message reached the contact.
func TestEventAboutMessageBeatsLastTouch(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(8, 0), "k1", withCampaign("spring")), delivered("m1", at(8, 1)),
		sent("m2", at(9, 0), "k1", withCampaign("summer")), delivered("m2", at(9, 1)),
		contactEvent(events.TypeBlocked, at(10, 0), "k1", withMessageID("m1")),
		contactEvent(events.TypeReported, at(10, 5), "k1"), // no message: last touch m2
	})
	rows, _ := f.table(`{"queryType":"table","metrics":["blocked","reported"],"groupBy":["campaign"]}`, base, base.AddDate(0, 0, 1))
	expectRow(t, rows, "spring", map[string]*float64{"blocked": num(1), "reported": num(0)})
	expectRow(t, rows, "summer", map[string]*float64{"blocked": num(0), "reported": num(1)})
}
