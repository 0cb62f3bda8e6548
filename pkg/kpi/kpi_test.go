package kpi_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
)

// TestEveryMetricCovered: every catalog metric has a hand-computed test, and every test
// named in the coverage map exists.
func TestEveryMetricCovered(t *testing.T) {
	for _, id := range kpi.MetricIDs() {
		_, ok := covered[id]
		assert.True(t, ok, "metric %s has no hand-computed test", id)
	}
	for id := range covered {
		_, ok := kpi.LookupMetric(id)
		assert.True(t, ok, "covered id %s is not in the catalog", id)
	}
	files, err := filepath.Glob("*_test.go")
	require.NoError(t, err)
	tests := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				tests[fd.Name.Name] = true
			}
		}
	}
	for id, test := range covered {
		assert.True(t, tests[test], "metric %s: test %s does not exist", id, test)
	}
}

var _ = cover("TestDeliveryMetrics", "sent", "delivered", "read", "failed", "delivery_rate", "read_rate", "failure_rate", "cost")

// TestDeliveryMetrics: message cohort counts and rates at send time, by campaign.
func TestDeliveryMetrics(t *testing.T) {
	f := newFixture(t, []events.Event{
		// spring
		sent("m1", at(10, 0), "k1", withCampaign("spring"), withPrice(0.05)),
		delivered("m1", at(10, 1)), read("m1", at(10, 5)), // delivered, read
		sent("m2", at(10, 0), "k2", withCampaign("spring"), withPrice(0.05)),
		read("m2", at(10, 3)), // read without delivered: delivered and read
		sent("m3", at(10, 10), "k3", withCampaign("spring"), withPrice(0.05)),
		failed("m3", at(10, 11), 131026), // failed only
		sent("m4", at(10, 20), "k4", withCampaign("spring"), withPrice(0.05)),
		failed("m4", at(10, 21), 131047), delivered("m4", at(10, 30)), // both failed and delivered
		sent("m5", at(10, 30), "k5", withCampaign("spring"), withPrice(0.05)),
		delivered("m5", at(10, 31), withID("d5a")), delivered("m5", at(10, 32), withID("d5b")), // repeated status
		read("m5", at(10, 40), withID("r5a")), read("m5", at(10, 41), withID("r5b")),
		sent("m6", at(10, 40), "k6", withCampaign("spring"), withPrice(0.05)), // no status
		// autumn
		sent("m7", at(11, 0), "k7", withCampaign("autumn"), withPrice(0.10)),
		delivered("m7", at(11, 1)),
		// statuses of a message whose sent is not stored: left out of the cohort
		delivered("m8", at(10, 0)), read("m8", at(10, 1)), failed("m8", at(10, 2), 131026),
	})
	from, to := base, base.AddDate(0, 0, 1)
	rows, order := f.table(`{"queryType":"table","metrics":["sent","delivered","read","failed","delivery_rate","read_rate","failure_rate","cost"],"groupBy":["campaign"]}`, from, to)
	require.Len(t, rows, 2, "no group for m8 without sent: %v", order)
	// spring: sent m1..m6 = 6; delivered m1,m2,m4,m5 = 4; read m1,m2,m5 = 3; failed m3,m4 = 2.
	expectRow(t, rows, "spring", map[string]*float64{
		"sent": num(6), "delivered": num(4), "read": num(3), "failed": num(2),
		"delivery_rate": num(4.0 / 6), "read_rate": num(3.0 / 4), "failure_rate": num(2.0 / 6),
		"cost": num(0.30),
	})
	// autumn: one message delivered, not read.
	expectRow(t, rows, "autumn", map[string]*float64{
		"sent": num(1), "delivered": num(1), "read": num(0), "failed": num(0),
		"delivery_rate": num(1), "read_rate": num(0), "failure_rate": num(0), "cost": num(0.10),
	})
	// Ranked by the first metric: spring (6) before autumn (1).
	assert.Equal(t, []string{"spring", "autumn"}, order)

	// Not grouped: 7 messages (m8 is not a message of the cohort).
	all, _ := f.table(`{"queryType":"table","metrics":["sent","delivered","failed"]}`, from, to)
	expectRow(t, all, "", map[string]*float64{"sent": num(7), "delivered": num(5), "failed": num(2)})

	// Failures group by the event's error code.
	byCode, _ := f.table(`{"queryType":"table","metrics":["failed"],"groupBy":["error_code"]}`, from, to)
	expectRow(t, byCode, "131026", map[string]*float64{"failed": num(1)})
	expectRow(t, byCode, "131047", map[string]*float64{"failed": num(1)})
}

var _ = cover("TestEngagementMetrics", "received", "clicks", "click_rate", "reply_rate")

// TestEngagementMetrics: clicks and replies credited by reply_to or last touch (24 h, both
// ends included, campaign messages only), received at event time with inherited dims.
func TestEngagementMetrics(t *testing.T) {
	f := newFixture(t, []events.Event{
		// k1: m1 delivered; a reply naming an unknown message credits nothing (and does not
		// fall back to last touch); an explicit reply 3 days later still credits m1.
		sent("m1", at(10, 0), "k1", withCampaign("spring")), delivered("m1", at(10, 1)),
		received("in1", at(10, 30), "k1", withReplyTo("ghost")),
		received("in2", day(3, 10, 0), "k1", withReplyTo("m1")),
		// k2: m2 has no status; a last-touch reply makes it delivered and replied. The same
		// inbound message arrives twice (webhook and CSV: derived id) and counts once.
		sent("m2", at(10, 0), "k2", withCampaign("spring")),
		received("in3", at(11, 0), "k2"), received("in3", at(11, 0), "k2"),
		// k3: a click exactly 24 h after the send is credited.
		sent("m3", at(10, 0), "k3", withCampaign("spring")), delivered("m3", at(10, 2)),
		clicked(day(1, 10, 0), "k3"),
		// k4: a reply 24 h + 1 s after the send is not credited (unattributed).
		sent("m4", at(10, 0), "k4", withCampaign("summer")), delivered("m4", at(10, 2)),
		received("in4", day(1, 10, 0).Add(1e9), "k4"),
		// k5: a bot message is not a last-touch candidate, but an explicit reply_to credits it.
		sent("b1", at(9, 0), "k5", withSender("bot"), withCampaign("botflow")), delivered("b1", at(9, 1)),
		received("in5", at(9, 10), "k5"),
		received("in6", at(9, 20), "k5", withReplyTo("b1")),
		// k6: a later agent message does not win last touch over the campaign message.
		sent("m7", at(8, 0), "k6", withCampaign("spring")), delivered("m7", at(8, 1)),
		sent("a6", at(9, 0), "k6", withSender("agent"), withAgent("ann")), delivered("a6", at(9, 1)),
		received("in7", at(9, 30), "k6"),
		// k8: last touch picks the latest campaign message.
		sent("m8", at(8, 0), "k8", withCampaign("spring")), delivered("m8", at(8, 1)),
		sent("m9", at(9, 0), "k8", withCampaign("summer")), delivered("m9", at(9, 1)),
		clicked(at(10, 0), "k8"),
	})
	from, to := base, base.AddDate(0, 0, 5)
	rows, _ := f.table(`{"queryType":"table","metrics":["delivered","clicks","click_rate","reply_rate","received"],"groupBy":["campaign"]}`, from, to)
	// spring: m1 (replied via explicit reply_to), m2 (delivered by its reply, replied),
	// m3 (clicked), m7 (replied by last touch), m8 (nothing): delivered 5, clicks 1,
	// click rate 1/5, reply rate 3/5. received credited to spring: in3, in7, in2 = 3.
	expectRow(t, rows, "spring", map[string]*float64{
		"delivered": num(5), "clicks": num(1), "click_rate": num(1.0 / 5), "reply_rate": num(3.0 / 5), "received": num(3),
	})
	// summer: m4 (reply too late), m9 (clicked by last touch): 2, 1, 1/2, 0.
	expectRow(t, rows, "summer", map[string]*float64{
		"delivered": num(2), "clicks": num(1), "click_rate": num(0.5), "reply_rate": num(0), "received": num(0),
	})
	// botflow: b1 replied through reply_to.
	expectRow(t, rows, "botflow", map[string]*float64{
		"delivered": num(1), "clicks": num(0), "click_rate": num(0), "reply_rate": num(1), "received": num(1),
	})
	// no campaign: the agent message a6 (delivered, no reply); unattributed received in1,
	// in4, in5 count in received only.
	expectRow(t, rows, "<nil>", map[string]*float64{
		"delivered": num(1), "clicks": num(0), "click_rate": num(0), "reply_rate": num(0), "received": num(3),
	})
	all, _ := f.table(`{"queryType":"table","metrics":["received","clicks"]}`, from, to)
	// 7 distinct inbound messages (in3 once), 2 clicked messages.
	expectRow(t, all, "", map[string]*float64{"received": num(7), "clicks": num(2)})
}

var _ = cover("TestConversionMetrics", "conversion_rate", "conversions", "conversions_total", "revenue", "revenue_per_message")

// TestConversionMetrics: 7-day last touch (both ends), reply_to, unattributed conversions,
// and the campaign of conversions (message) vs conversions_total (the event's own tag).
func TestConversionMetrics(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", at(10, 0), "k1", withCampaign("spring")), delivered("m1", at(10, 1)),
		sent("m2", at(12, 0), "k1", withCampaign("summer")), delivered("m2", at(12, 1)),
		// last touch -> m2 (latest), although the CRM tags it "crm".
		converted(at(13, 0), "k1", 20, withCampaign("crm")),
		// reply_to -> m1.
		converted(at(14, 0), "k1", 30, withReplyTo("m1")),
		// exactly 7 days after m3's send: credited.
		sent("m3", at(10, 0), "k2", withCampaign("spring")), delivered("m3", at(10, 1)),
		converted(day(7, 10, 0), "k2", 10),
		// m4 has no delivery: its conversion is attributed (conversions, revenue) but the
		// message is not in conversion_rate's numerator or denominator.
		sent("m4", at(10, 0), "k3", withCampaign("spring")),
		converted(at(11, 0), "k3", 5),
		// no message at all: unattributed.
		converted(at(11, 0), "k4", 7),
		// 7 days + 1 s after m5: unattributed.
		sent("m5", at(10, 0), "k5", withCampaign("spring")), delivered("m5", at(10, 1)),
		converted(day(7, 10, 0).Add(1e9), "k5", 9),
	})
	from, to := base, base.AddDate(0, 0, 10)
	rows, _ := f.table(`{"queryType":"table","metrics":["conversions","conversions_total","conversion_rate","revenue","revenue_per_message"],"groupBy":["campaign"]}`, from, to)
	// spring: delivered m1, m3, m5 = 3; conversions m1, m3, m4 = 3; converted delivered
	// messages m1, m3 = 2 -> 2/3; revenue 30 + 10 + 5 = 45; per delivered 45/3 = 15.
	// conversions_total by the event's campaign, else the credited message's: k1@14:00
	// (m1), k2 (m3), k3 (m4) = 3.
	expectRow(t, rows, "spring", map[string]*float64{
		"conversions": num(3), "conversions_total": num(3), "conversion_rate": num(2.0 / 3),
		"revenue": num(45), "revenue_per_message": num(15),
	})
	// summer: m2 gets the CRM-tagged conversion: 1, rate 1, revenue 20; but the event
	// counts for conversions_total under its own tag "crm".
	expectRow(t, rows, "summer", map[string]*float64{
		"conversions": num(1), "conversions_total": num(0), "conversion_rate": num(1),
		"revenue": num(20), "revenue_per_message": num(20),
	})
	expectRow(t, rows, "crm", map[string]*float64{
		"conversions": num(0), "conversions_total": num(1), "conversion_rate": null, "revenue": num(0),
		"revenue_per_message": null,
	})
	// unattributed: k4 and k5 count in conversions_total only.
	expectRow(t, rows, "<nil>", map[string]*float64{"conversions": num(0), "conversions_total": num(2)})

	// conversions are at send time (day 0: m1, m2, m3, m4 = 4); conversions_total at the
	// event's own time: day 0 k1 twice, k3, k4 = 4; day 7 k2 and k5 (one second later) = 2.
	s := f.series(`{"queryType":"timeseries","metrics":["conversions","conversions_total"],"bucket":"1d"}`, from, to)
	expectSeries(t, s, "", "conversions", num(4), num(0), num(0), num(0), num(0), num(0), num(0), num(0), num(0), num(0))
	expectSeries(t, s, "", "conversions_total", num(4), num(0), num(0), num(0), num(0), num(0), num(0), num(2), num(0), num(0))
}

var _ = cover("TestChurnMetrics", "blocked", "opted_out", "reported", "deliveries", "block_rate", "opt_out_rate", "report_rate", "churn_rate")

// TestChurnMetrics: event-time rates over deliveries counted once at their earliest
// delivered/read time; blocks get dimensions by last touch within 24 h.
func TestChurnMetrics(t *testing.T) {
	f := newFixture(t, []events.Event{
		sent("m1", day(0, 10, 0), "k1", withCampaign("spring")), delivered("m1", day(0, 10, 1)), read("m1", day(0, 10, 2)),
		// m2: read (day 1 08:00) before delivered (day 1 09:00): counted once at 08:00.
		sent("m2", day(0, 10, 0), "k2", withCampaign("spring")), delivered("m2", day(1, 9, 0)), read("m2", day(1, 8, 0)),
		sent("m3", day(0, 11, 0), "k3", withCampaign("summer")), delivered("m3", day(0, 11, 5)),
		// m4: statuses without a sent still count as a delivery (no dimensions).
		delivered("m4", day(0, 12, 0)),
		sent("m5", day(1, 7, 0), "k5", withCampaign("summer")), delivered("m5", day(1, 7, 1)),
		sent("m6", day(1, 7, 0), "k6", withCampaign("summer")), delivered("m6", day(1, 7, 2)),
		sent("m7", day(1, 7, 0), "k7", withCampaign("summer")), delivered("m7", day(1, 7, 3)),
		// k1 blocks on day 0 (last touch m1: spring).
		contactEvent(events.TypeBlocked, day(0, 20, 0), "k1"),
		// k3 blocks 24 h + 1 s after m3: no credit, no campaign.
		contactEvent(events.TypeBlocked, day(1, 11, 0).Add(1e9), "k3"),
		// k2 opts out (m2: spring), k1 reports and opts out (m1, 23.5 h before: spring).
		contactEvent(events.TypeOptedOut, day(1, 9, 0), "k2"),
		contactEvent(events.TypeReported, day(1, 9, 30), "k1"),
		contactEvent(events.TypeOptedOut, day(1, 9, 40), "k1"),
	})
	from, to := base, base.AddDate(0, 0, 2)
	s := f.series(`{"queryType":"timeseries","metrics":["deliveries","blocked","opted_out","reported","block_rate","opt_out_rate","report_rate","churn_rate"],"bucket":"1d"}`, from, to)
	// day 0: deliveries m1, m3, m4 = 3; blocked 1 -> 1/3; churned contacts k1 / delivered
	// contacts k1, k3 (m4 has none) = 1/2.
	// day 1: deliveries m2 (at its read), m5, m6, m7 = 4; blocked k3, opt-outs k2 and k1,
	// one report: 1/4, 2/4, 1/4; churned k3, k2, k1 / delivered to k2, k5, k6, k7 = 3/4.
	expectSeries(t, s, "", "deliveries", num(3), num(4))
	expectSeries(t, s, "", "blocked", num(1), num(1))
	expectSeries(t, s, "", "opted_out", num(0), num(2))
	expectSeries(t, s, "", "reported", num(0), num(1))
	expectSeries(t, s, "", "block_rate", num(1.0/3), num(1.0/4))
	expectSeries(t, s, "", "opt_out_rate", num(0), num(2.0/4))
	expectSeries(t, s, "", "report_rate", num(0), num(1.0/4))
	expectSeries(t, s, "", "churn_rate", num(1.0/2), num(3.0/4))

	rows, _ := f.table(`{"queryType":"table","metrics":["deliveries","blocked","opted_out","reported","block_rate","opt_out_rate","churn_rate"],"groupBy":["campaign"]}`, from, to)
	// spring: deliveries m1, m2; blocked k1; opted out k2, k1; reported k1.
	expectRow(t, rows, "spring", map[string]*float64{
		"deliveries": num(2), "blocked": num(1), "opted_out": num(2), "reported": num(1),
		"block_rate": num(0.5), "opt_out_rate": num(1), "churn_rate": num(1),
	})
	expectRow(t, rows, "summer", map[string]*float64{
		"deliveries": num(4), "blocked": num(0), "opted_out": num(0), "block_rate": num(0), "churn_rate": num(0),
	})
	// no campaign: m4's delivery and k3's uncredited block; no delivered contact.
	expectRow(t, rows, "<nil>", map[string]*float64{
		"deliveries": num(1), "blocked": num(1), "block_rate": num(1), "churn_rate": null,
	})
}

var _ = cover("TestContactMetrics", "active_contacts", "new_contacts", "returning_contacts")

// TestContactMetrics: active = received; new/returning by the first received in the whole
// store, ignoring the query's range and filters.
func TestContactMetrics(t *testing.T) {
	f := newFixture(t, []events.Event{
		received("i1", day(0, 10, 0), "c1"), received("i2", day(1, 10, 0), "c1"), received("i3", day(2, 10, 0), "c1"),
		received("i4", day(1, 11, 0), "c2"), received("i5", day(1, 12, 0), "c2"), received("i6", day(2, 11, 0), "c2"),
		received("i7", day(2, 9, 0), "c3"),
		// c4 first writes on day 0 (no campaign), then on day 1 in reply to spring.
		received("i8", day(0, 9, 0), "c4"),
		sent("m1", day(1, 8, 0), "c4", withCampaign("spring")), delivered("m1", day(1, 8, 1)),
		received("i9", day(1, 9, 0), "c4"),
	})
	from, to := base.AddDate(0, 0, 1), base.AddDate(0, 0, 3)
	s := f.series(`{"queryType":"timeseries","metrics":["active_contacts","new_contacts","returning_contacts"],"bucket":"1d"}`, from, to)
	// day 1: c1 (returning), c2 (new, two messages), c4 (returning) -> 3, 1, 2.
	// day 2: c1, c2 (returning), c3 (new) -> 3, 1, 2.
	expectSeries(t, s, "", "active_contacts", num(3), num(3))
	expectSeries(t, s, "", "new_contacts", num(1), num(1))
	expectSeries(t, s, "", "returning_contacts", num(2), num(2))
	// Filtered to spring: day 1 only c4, who wrote before (unfiltered) -> returning.
	s = f.series(`{"queryType":"timeseries","metrics":["active_contacts","new_contacts","returning_contacts"],"bucket":"1d","filters":[{"dimension":"campaign","op":"in","values":["spring"]}]}`, from, to)
	expectSeries(t, s, "", "active_contacts", num(1), num(0))
	expectSeries(t, s, "", "new_contacts", num(0), num(0))
	expectSeries(t, s, "", "returning_contacts", num(1), num(0))
	// Over the whole range as a table: new means first received within the range.
	rows, _ := f.table(`{"queryType":"table","metrics":["active_contacts","new_contacts","returning_contacts"]}`, from, to)
	expectRow(t, rows, "", map[string]*float64{"active_contacts": num(4), "new_contacts": num(2), "returning_contacts": num(2)})
}

var _ = cover("TestQualityRating", "quality_rating")

// TestQualityRating: state at the end of each bucket, carried forward; template ratings
// do not change the number's rating.
func TestQualityRating(t *testing.T) {
	f := newFixture(t, []events.Event{
		quality(day(0, 9, 0), "n1", "GREEN"),
		quality(day(1, 10, 0), "n1", "YELLOW"),
		quality(day(1, 12, 0), "n1", "RED", withTemplate("promo")), // template rating only
		quality(day(2, 6, 0), "n1", "RED"),
		quality(day(2, 5, 0), "n2", "GREEN"),
	})
	from, to := base.AddDate(0, 0, 1), base.AddDate(0, 0, 4)
	s := f.series(`{"queryType":"timeseries","metrics":["quality_rating"],"groupBy":["business_number"],"bucket":"1d"}`, from, to)
	// n1: end of day 1 YELLOW (1), day 2 RED (2), day 3 carried RED (2).
	expectSeries(t, s, `business_number=n1`, "quality_rating", num(1), num(2), num(2))
	// n2: no rating before day 2.
	expectSeries(t, s, `business_number=n2`, "quality_rating", null, num(0), num(0))
	s = f.series(`{"queryType":"timeseries","metrics":["quality_rating"],"groupBy":["template"],"bucket":"1d"}`, from, to)
	expectSeries(t, s, `template=promo`, "quality_rating", num(2), num(2), num(2))
	rows, _ := f.table(`{"queryType":"table","metrics":["quality_rating"],"groupBy":["business_number"]}`, from, to)
	expectRow(t, rows, "n1", map[string]*float64{"quality_rating": num(2)})
	expectRow(t, rows, "n2", map[string]*float64{"quality_rating": num(0)})
	// Before the YELLOW change (range ends day 1 10:00), n1 is still GREEN: the template
	// RED at day 1 12:00 would not count anyway.
	rows, _ = f.table(`{"queryType":"table","metrics":["quality_rating"],"groupBy":["business_number"]}`, from, day(1, 10, 0))
	expectRow(t, rows, "n1", map[string]*float64{"quality_rating": num(0)})
}
