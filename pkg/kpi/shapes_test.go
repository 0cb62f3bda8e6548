package kpi_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
)

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// SPEC 5 "Time": daily buckets start at local midnight in the query's zone, DST days last
// 23 h (2024-03-31) or 25 h (2024-10-27) in Europe/Rome; hour_of_day and day_of_week are
// local, of the send time for outcomes and of the event time otherwise.
func TestTimeZonesAndDST(t *testing.T) {
	rome := mustZone(t, "Europe/Rome")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	f := newFixture(t, []events.Event{
		// 2024-03-31 00:30 CET (day 31 in Rome, day 30 in UTC)
		sent("m1", utc("2024-03-30T23:30:00Z"), "k1"), delivered("m1", utc("2024-03-31T08:00:00Z")),
		// 2024-03-31 23:59 CEST (day 31; the day is 23 h long)
		sent("m3", utc("2024-03-31T21:59:00Z"), "k3"),
		// 2024-04-01 00:30 CEST (day 1 in Rome, day 31 in UTC)
		sent("m2", utc("2024-03-31T22:30:00Z"), "k2"),
		// an inbound message at 2024-04-01 10:15 CEST
		received("in1", utc("2024-04-01T08:15:00Z"), "k9"),
		// 25 h day: 2024-10-27 00:30 CEST and 23:30 CET are the same local day.
		sent("n1", utc("2024-10-26T22:30:00Z"), "k1"), sent("n2", utc("2024-10-27T22:30:00Z"), "k2"),
	})
	from := time.Date(2024, 3, 30, 0, 0, 0, 0, rome)
	to := time.Date(2024, 4, 2, 0, 0, 0, 0, rome)
	s := f.series(`{"queryType":"timeseries","metrics":["sent","delivered","received"],"bucket":"1d","timezone":"Europe/Rome"}`, from, to)
	require.Len(t, s.times, 3)
	assert.True(t, s.times[0].Equal(utc("2024-03-29T23:00:00Z")))
	assert.True(t, s.times[1].Equal(utc("2024-03-30T23:00:00Z")))
	assert.True(t, s.times[2].Equal(utc("2024-03-31T22:00:00Z")), "the DST day lasts 23 h")
	assert.Equal(t, 23*time.Hour, s.times[2].Sub(s.times[1]))
	expectSeries(t, s, "", "sent", num(0), num(2), num(1))
	// m1's delivery (on day 31) stays at m1's send time.
	expectSeries(t, s, "", "delivered", num(0), num(1), num(0))
	expectSeries(t, s, "", "received", num(0), num(0), num(1))
	// The same range in UTC days splits differently.
	s = f.series(`{"queryType":"timeseries","metrics":["sent"],"bucket":"1d"}`, utc("2024-03-30T00:00:00Z"), utc("2024-04-01T00:00:00Z"))
	expectSeries(t, s, "", "sent", num(1), num(2))

	// 25 h day.
	s = f.series(`{"queryType":"timeseries","metrics":["sent"],"bucket":"1d","timezone":"Europe/Rome"}`,
		time.Date(2024, 10, 27, 0, 0, 0, 0, rome), time.Date(2024, 10, 29, 0, 0, 0, 0, rome))
	require.Len(t, s.times, 2)
	assert.Equal(t, 25*time.Hour, s.times[1].Sub(s.times[0]))
	expectSeries(t, s, "", "sent", num(2), num(0))

	// hour_of_day / day_of_week in Rome: m1 0 Sun, m3 23 Sun, m2 0 Mon; delivered by the
	// send hour (m1 delivered at 10:00 local is in hour 0).
	rows, _ := f.table(`{"queryType":"table","metrics":["sent","delivered"],"groupBy":["hour_of_day"],"timezone":"Europe/Rome"}`, from, to)
	expectRow(t, rows, "0", map[string]*float64{"sent": num(2), "delivered": num(1)})
	expectRow(t, rows, "23", map[string]*float64{"sent": num(1), "delivered": num(0)})
	assert.Len(t, rows, 2)
	rows, _ = f.table(`{"queryType":"table","metrics":["sent"],"groupBy":["day_of_week"],"timezone":"Europe/Rome"}`, from, to)
	expectRow(t, rows, "7-Sun", map[string]*float64{"sent": num(2)})
	expectRow(t, rows, "1-Mon", map[string]*float64{"sent": num(1)})
	// Events at their own time: in1 at 10 local on Monday.
	rows, _ = f.table(`{"queryType":"table","metrics":["received"],"groupBy":["hour_of_day","day_of_week"],"timezone":"Europe/Rome"}`, from, to)
	expectRow(t, rows, "10|1-Mon", map[string]*float64{"received": num(1)})
	// In UTC the same messages are at 23, 21, 22 and Saturday/Sunday.
	rows, _ = f.table(`{"queryType":"table","metrics":["sent"],"groupBy":["hour_of_day"]}`, from, to)
	expectRow(t, rows, "23", map[string]*float64{"sent": num(1)})
	expectRow(t, rows, "21", map[string]*float64{"sent": num(1)})
	expectRow(t, rows, "22", map[string]*float64{"sent": num(1)})

	// Sub-day buckets align to UTC even with a zone: 3 h buckets start at 00, 03, ... UTC.
	s = f.series(`{"queryType":"timeseries","metrics":["sent"],"bucket":"3h","timezone":"Europe/Rome"}`, utc("2024-03-30T22:00:00Z"), utc("2024-03-31T03:00:00Z"))
	// [22:00, 03:00) UTC -> buckets 21:00 and 00:00 UTC (m1 at 23:30 in the first).
	require.Len(t, s.times, 2)
	assert.True(t, s.times[0].Equal(utc("2024-03-30T21:00:00Z")))
	assert.True(t, s.times[1].Equal(utc("2024-03-31T00:00:00Z")))
	expectSeries(t, s, "", "sent", num(1), num(0))
}

// SPEC 5 "Time": weeks start on Monday.
func TestWeeksStartMonday(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", day(6, 23, 0), "k1"), // Sunday 2024-03-10 23:00
		sent("m2", day(7, 0, 0), "k2"),  // Monday 2024-03-11 00:00
		sent("m3", day(2, 0, 0), "k3"),  // Wednesday
	})
	s := f.series(`{"queryType":"timeseries","metrics":["sent"],"bucket":"1w"}`, day(2, 0, 0), day(14, 0, 0))
	// [Wed 03-06, Mon 03-18) -> weeks of Mon 03-04 (m3, m1) and Mon 03-11 (m2).
	require.Len(t, s.times, 2)
	assert.True(t, s.times[0].Equal(base), "first week starts Monday %s, got %s", base, s.times[0])
	assert.Equal(t, time.Monday, s.times[1].Weekday())
	expectSeries(t, s, "", "sent", num(2), num(1))
	// In Europe/Rome, the week starts at local Monday midnight (Sunday 23:00 UTC), so m1
	// (Monday 00:00 local) belongs to the second week.
	s = f.series(`{"queryType":"timeseries","metrics":["sent"],"bucket":"1w","timezone":"Europe/Rome"}`, day(2, 0, 0), day(14, 0, 0))
	// (The range ends Monday 01:00 local, so a third week starts at 03-17 23:00 UTC.)
	require.Len(t, s.times, 3)
	assert.True(t, s.times[1].Equal(day(6, 23, 0)), "got %s", s.times[1])
	expectSeries(t, s, "", "sent", num(1), num(2), num(0))
}

// SPEC 5 "Funnel": furthest stage reached; a replied message without a read receipt
// counts as read; counts never grow; step rates are stage / previous stage.
func TestFunnel(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("f1", at(10, 0), "k1"), // sent only
		sent("f2", at(10, 0), "k2"), delivered("f2", at(10, 1)),
		sent("f3", at(10, 0), "k3"), read("f3", at(10, 1)),
		sent("f4", at(10, 0), "k4"), received("in4", at(10, 5), "k4"), // replied, no receipt
		sent("f5", at(10, 0), "k5"), read("f5", at(10, 1)), clicked(at(10, 2), "k5"),
		sent("f6", at(10, 0), "k6"), read("f6", at(10, 1)), converted(at(11, 0), "k6", 10, withReplyTo("f6")),
	})
	frames := f.run(`{"queryType":"funnel"}`, base, base.AddDate(0, 0, 1))
	require.Len(t, frames, 1)
	fr := frames[0]
	stages, messages, step, overall := fr.Fields[0], fr.Fields[1], fr.Fields[2], fr.Fields[3]
	require.Equal(t, "stage", stages.Name)
	var gotStages []string
	var gotCounts []float64
	for i := 0; i < stages.Len(); i++ {
		gotStages = append(gotStages, stages.At(i).(string))
		gotCounts = append(gotCounts, messages.At(i).(float64))
	}
	assert.Equal(t, []string{"sent", "delivered", "read", "engaged", "converted"}, gotStages)
	// sent 6; delivered f2..f6 = 5; read f3..f6 = 4 (f4 by its reply); engaged f4, f5, f6 = 3
	// (f6 converted, which is further); converted f6 = 1.
	assert.Equal(t, []float64{6, 5, 4, 3, 1}, gotCounts)
	wantStep := []*float64{null, num(5.0 / 6), num(4.0 / 5), num(3.0 / 4), num(1.0 / 3)}
	wantOverall := []*float64{num(1), num(5.0 / 6), num(4.0 / 6), num(3.0 / 6), num(1.0 / 6)}
	for i := range wantStep {
		assertVal(t, wantStep[i], step.At(i).(*float64), "step_rate %d", i)
		assertVal(t, wantOverall[i], overall.At(i).(*float64), "overall_rate %d", i)
	}
}

// SPEC 5 "Statistics": A/B against control (else the first variant alphabetically), Wilson
// interval with z = 1.959964, pooled two-proportion z-test, two-sided, no continuity
// correction; denominators are delivered messages.
func TestABComparison(t *testing.T) {
	var evs []events.Event
	arm := func(variant string, delivered_, clicked_, undelivered int) {
		for i := 0; i < delivered_+undelivered; i++ {
			id := variant + string(rune('a'+i))
			evs = append(evs, sent(id, at(10, 0), "k"+id, withVariant(variant), withCampaign("ab")))
			if i < delivered_ {
				evs = append(evs, delivered(id, at(10, 1)))
			}
			if i < clicked_ {
				evs = append(evs, clicked(at(10, 2), "k"+id, withReplyTo(id)))
			}
		}
	}
	// control: 1 click of 4 delivered (+1 undelivered, not in the denominator);
	// treat: 4 of 5; "a-first" sorts first but control is the baseline.
	arm("control", 4, 1, 1)
	arm("treat", 5, 4, 0)
	arm("a-first", 2, 1, 0)
	f := newFixture(t, evs)
	frames := f.run(`{"queryType":"ab","metric":"click_rate"}`, base, base.AddDate(0, 0, 1))
	require.Len(t, frames, 1)
	res := abRows(t, frames[0])
	require.Contains(t, res, "control")
	require.Contains(t, res, "treat")
	c, tr := res["control"], res["treat"]
	assert.Equal(t, "control", c.baseline)
	assert.Equal(t, "control", tr.baseline)
	assert.Equal(t, "control", res["a-first"].baseline)
	assert.Equal(t, []float64{4, 1}, []float64{c.n, c.k})
	assert.Equal(t, []float64{5, 4}, []float64{tr.n, tr.k})
	assertVal(t, num(0.25), c.rate)
	assertVal(t, num(0.8), tr.rate)
	assert.Nil(t, c.p, "no p-value for the baseline")
	assert.Nil(t, c.z)

	// Hand computation: pooled p = 5/9, SE = sqrt(5/9 * 4/9 * (1/5 + 1/4)) = sqrt(1/9) = 1/3,
	// z = (0.8 - 0.25) / (1/3) = 1.65; two-sided p = 2 (1 - Phi(1.65)) = 0.098943 (normal
	// table: Phi(1.65) = 0.95053).
	assertVal(t, num(1.65), tr.z)
	require.NotNil(t, tr.p)
	assert.InDelta(t, 0.0989429, *tr.p, 1e-6)

	// Wilson, closed form (2k + z^2 +- z sqrt(z^2 + 4k(n-k)/n)) / (2(n + z^2)), z = 1.959964.
	wilson := func(k, n float64) (float64, float64) {
		z := 1.959964
		r := z * math.Sqrt(z*z+4*k*(n-k)/n)
		return (2*k + z*z - r) / (2 * (n + z*z)), (2*k + z*z + r) / (2 * (n + z*z))
	}
	lo, hi := wilson(1, 4)
	assert.InDelta(t, 0.0455873, lo, 1e-6) // literal values, independently computed
	assert.InDelta(t, 0.6993582, hi, 1e-6)
	assertVal(t, num(lo), c.lo)
	assertVal(t, num(hi), c.hi)
	lo, hi = wilson(4, 5)
	assert.InDelta(t, 0.3755346, lo, 1e-6)
	assert.InDelta(t, 0.9637759, hi, 1e-6)
	assertVal(t, num(lo), tr.lo)
	assertVal(t, num(hi), tr.hi)

	// The exported helpers agree with a textbook example: 40/100 vs 25/100 -> z = 2.2646,
	// p = 0.02354; Wilson 40/100 -> [0.30940, 0.49800].
	z, p := kpi.TwoProportionZ(40, 100, 25, 100)
	assert.InDelta(t, 2.264554, z, 1e-5)
	assert.InDelta(t, 0.023540, p, 1e-5)
	l, h := kpi.Wilson(40, 100)
	assert.InDelta(t, 0.309401, l, 1e-5)
	assert.InDelta(t, 0.497997, h, 1e-5)

	// Without control, the first variant alphabetically is the baseline.
	frames = f.run(`{"queryType":"ab","metric":"click_rate","filters":[{"dimension":"variant","op":"not_in","values":["control"]}]}`, base, base.AddDate(0, 0, 1))
	res = abRows(t, frames[0])
	assert.Equal(t, "a-first", res["treat"].baseline)
	assert.Equal(t, "a-first", res["a-first"].baseline)
	assert.Nil(t, res["a-first"].p)
	require.NotNil(t, res["treat"].p)

	// delivery_rate: denominators are sent messages (control 4 of 5).
	frames = f.run(`{"queryType":"ab","metric":"delivery_rate"}`, base, base.AddDate(0, 0, 1))
	res = abRows(t, frames[0])
	assert.Equal(t, []float64{5, 4}, []float64{res["control"].n, res["control"].k})
}

type abRow struct {
	baseline           string
	n, k               float64
	rate, lo, hi, z, p *float64
}

func abRows(t *testing.T, fr *data.Frame) map[string]abRow {
	t.Helper()
	field := func(name string) *data.Field {
		for _, fl := range fr.Fields {
			if fl.Name == name {
				return fl
			}
		}
		t.Fatalf("no field %s", name)
		return nil
	}
	out := map[string]abRow{}
	n, _ := fr.RowLen()
	for i := 0; i < n; i++ {
		out[field("variant").At(i).(string)] = abRow{
			baseline: field("baseline").At(i).(string),
			n:        field("messages").At(i).(float64),
			k:        field("successes").At(i).(float64),
			rate:     field("rate").At(i).(*float64),
			lo:       field("ci_low").At(i).(*float64),
			hi:       field("ci_high").At(i).(*float64),
			z:        field("z").At(i).(*float64),
			p:        field("p_value").At(i).(*float64),
		}
	}
	return out
}

// SPEC 5 "Contacts": retention cohorts by the first received in the whole store; shares
// active k periods later; future periods null; weeks start on Monday.
func TestRetention(t *testing.T) {
	f := newFixture(t, []events.Event{
		received("x0", day(-1, 9, 0), "r4"), received("x1", day(0, 9, 0), "r4"), // first before the range: no cohort
		received("a0", day(0, 10, 0), "r1"), received("a1", day(1, 10, 0), "r1"),
		received("b0", day(0, 11, 0), "r2"), received("b2", day(2, 11, 0), "r2"),
		received("c1", day(1, 12, 0), "r3"), received("c1b", day(1, 13, 0), "r3"), received("c2", day(2, 12, 0), "r3"),
	})
	frames := f.run(`{"queryType":"retention","period":"day"}`, base, base.AddDate(0, 0, 3))
	require.Len(t, frames, 1)
	fr := frames[0]
	names := []string{}
	for _, fl := range fr.Fields {
		names = append(names, fl.Name)
	}
	assert.Equal(t, []string{"cohort", "cohort_size", "+0", "+1", "+2"}, names)
	require.Equal(t, 2, fr.Fields[0].Len())
	assert.True(t, fr.Fields[0].At(0).(time.Time).Equal(base))
	assert.True(t, fr.Fields[0].At(1).(time.Time).Equal(base.AddDate(0, 0, 1)))
	// cohort day 0: r1, r2 (size 2): +0 1, +1 r1 1/2, +2 r2 1/2.
	// cohort day 1: r3 (size 1): +0 1, +1 1, +2 is day 3: in the future of the range (null).
	assert.Equal(t, 2.0, fr.Fields[1].At(0))
	assert.Equal(t, 1.0, fr.Fields[1].At(1))
	want := [][]*float64{{num(1), num(0.5), num(0.5)}, {num(1), num(1), null}}
	for r := range want {
		for k := range want[r] {
			assertVal(t, want[r][k], fr.Fields[2+k].At(r).(*float64), "cohort %d +%d", r, k)
		}
	}

	// Weekly: a Sunday first contact and a Monday return are consecutive weeks.
	f = newFixture(t, []events.Event{
		received("s", day(6, 20, 0), "w1"), // Sunday 2024-03-10
		received("m", day(7, 8, 0), "w1"),  // Monday 2024-03-11
	})
	frames = f.run(`{"queryType":"retention","period":"week"}`, base, base.AddDate(0, 0, 14))
	fr = frames[0]
	require.Equal(t, 1, fr.Fields[0].Len())
	assert.True(t, fr.Fields[0].At(0).(time.Time).Equal(base), "week cohort starts Monday %s", fr.Fields[0].At(0))
	assertVal(t, num(1), fr.Fields[2].At(0).(*float64))
	assertVal(t, num(1), fr.Fields[3].At(0).(*float64))
}

// values: distinct, sorted, search (case-insensitive), limit; derived dimensions list
// their fixed values.
func TestValuesQuery(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(10, 0), "k1", withCampaign("summer")), sent("m2", at(10, 0), "k2", withCampaign("spring")),
		sent("m3", at(10, 0), "k3", withCampaign("summer")),
		converted(at(11, 0), "k9", 1, withCampaign("autumn")), // an event-only value
		failed("m1", at(10, 1), 131026),
	})
	get := func(q string) []string {
		frames := f.run(q, base, base.AddDate(0, 0, 1))
		require.Len(t, frames, 1)
		fl := frames[0].Fields[0]
		out := []string{}
		for i := 0; i < fl.Len(); i++ {
			out = append(out, fl.At(i).(string))
		}
		return out
	}
	assert.Equal(t, []string{"autumn", "spring", "summer"}, get(`{"queryType":"values","dimension":"campaign"}`))
	assert.Equal(t, []string{"autumn", "summer"}, get(`{"queryType":"values","dimension":"campaign","search":"UM"}`))
	assert.Equal(t, []string{"autumn", "spring"}, get(`{"queryType":"values","dimension":"campaign","limit":2}`))
	assert.Equal(t, []string{"131026"}, get(`{"queryType":"values","dimension":"error_code"}`))
	assert.Len(t, get(`{"queryType":"values","dimension":"hour_of_day"}`), 24)
	assert.Equal(t, []string{"1-Mon", "2-Tue", "3-Wed", "4-Thu", "5-Fri", "6-Sat", "7-Sun"}, get(`{"queryType":"values","dimension":"day_of_week"}`))
	vals, truncated, err := f.e.Values(t.Context(), mustParse(t, `{"queryType":"values","dimension":"campaign"}`), 1)
	require.NoError(t, err)
	assert.Equal(t, []string{"autumn"}, vals)
	assert.True(t, truncated)
}

func mustParse(t *testing.T, s string) *kpi.Query {
	q, err := kpi.ParseQuery([]byte(s))
	require.NoError(t, err)
	return q
}

// SPEC 3: a bad query is an error naming what is wrong and what is allowed.
func TestParseQueryErrors(t *testing.T) {
	cases := []struct {
		name, query string
		mention     []string
	}{
		{"unknown metric", `{"queryType":"table","metrics":["nope"]}`, []string{`"nope"`, "delivery_rate", "block_rate"}},
		{"unknown groupBy", `{"queryType":"table","metrics":["sent"],"groupBy":["planet"]}`, []string{`"planet"`, "campaign", "day_of_week"}},
		{"unknown filter dimension", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"planet","values":["x"]}]}`, []string{`"planet"`, "campaign"}},
		{"unknown op", `{"queryType":"table","metrics":["sent"],"filters":[{"dimension":"campaign","op":"like","values":["x"]}]}`, []string{`"like"`, "in", "not_in"}},
		{"unknown shape", `{"queryType":"pie","metrics":["sent"]}`, []string{`"pie"`, "timeseries", "funnel", "retention", "values"}},
		{"unknown field", `{"queryType":"table","metrics":["sent"],"colour":"red"}`, []string{"colour", "metrics", "groupBy"}},
		{"bad bucket", `{"queryType":"timeseries","metrics":["sent"],"bucket":"7m"}`, []string{`"7m"`, "1h", "1d", "1w"}},
		{"bad bucket unit", `{"queryType":"timeseries","metrics":["sent"],"bucket":"2d"}`, []string{`"2d"`, "1d", "1w"}},
		{"bad timezone", `{"queryType":"timeseries","metrics":["sent"],"timezone":"Mars/Olympus"}`, []string{"Mars/Olympus", "Europe/Rome"}},
		{"limit too big", `{"queryType":"table","metrics":["sent"],"limit":501}`, []string{"501", "500"}},
		{"limit zero", `{"queryType":"table","metrics":["sent"],"limit":0}`, []string{"0", "1 to 500"}},
		{"no metrics", `{"queryType":"timeseries"}`, []string{"metric", "delivery_rate"}},
		{"ab with a count", `{"queryType":"ab","metric":"sent"}`, []string{`"sent"`, "click_rate", "delivery_rate"}},
		{"ab unknown metric", `{"queryType":"ab","metric":"zzz"}`, []string{"click_rate", "reply_rate"}},
		{"quality with another metric", `{"queryType":"table","metrics":["quality_rating","sent"]}`, []string{"quality_rating", "sent"}},
		{"quality by campaign", `{"queryType":"table","metrics":["quality_rating"],"groupBy":["campaign"]}`, []string{"business_number", "template", `"campaign"`}},
		{"bad period", `{"queryType":"retention","period":"year"}`, []string{`"year"`, "day", "week", "month"}},
		{"values without dimension", `{"queryType":"values"}`, []string{"dimension", "campaign"}},
		{"wrong type", `{"queryType":"table","metrics":"sent"}`, []string{"metrics", "list"}},
		{"funnel with metrics", `{"queryType":"funnel","metrics":["sent"]}`, []string{"funnel", "sent", "converted"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := kpi.ParseQuery([]byte(c.query))
			require.Error(t, err)
			assert.True(t, errors.Is(err, kpi.ErrBadQuery), "wraps ErrBadQuery: %v", err)
			for _, m := range c.mention {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
	// And valid queries parse.
	for _, q := range []string{
		`{"queryType":"timeseries","metrics":["delivery_rate","read_rate"],"groupBy":["campaign"],"filters":[{"dimension":"country","op":"in","values":["IT","DE"]}],"bucket":"1h","limit":10,"timezone":"Europe/Rome","refId":"A"}`,
		`{"queryType":"ab","metric":"click_rate","groupBy":["campaign"]}`,
		`{"queryType":"values","dimension":"error_code","search":"13"}`,
		`{"queryType":"table","metrics":["failed"],"filters":[{"dimension":"error_code","values":[131026]}]}`,
	} {
		_, err := kpi.ParseQuery([]byte(q))
		assert.NoError(t, err, q)
	}
	// Too many points with an explicit bucket is an error at run time, naming the bucket.
	f := newFixture(t, nil)
	_, err := f.runErr(`{"queryType":"timeseries","metrics":["sent"],"bucket":"1m"}`, base, base.AddDate(1, 0, 0))
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "1m"), err.Error())
}
