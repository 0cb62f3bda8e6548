package kpi_test

import (
	"testing"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

var _ = cover("TestServiceMetrics", "conversations", "first_response_time", "first_response_time_p50", "first_response_time_p90",
	"response_time", "unanswered_turns", "resolution_time", "resolution_time_p50", "resolution_time_p90",
	"escalation_rate", "self_resolution_rate", "abandonment_rate", "abandoned", "csat_avg", "csat_satisfied", "nps")

// sec is base day 0 at hh:mm:ss.
func sec(h, m, s int) time.Time { return at(h, m).Add(time.Duration(s) * time.Second) }

// serviceEvents: four conversations on day 0.
//
//	cv1 09:00 opened (campaign help), inbound r1 09:00, bot b1 09:00:30, escalated 09:02,
//	    agent ann a1 09:05, resolved by agent dan 09:20.
//	    FRT 09:05 - max(09:00, 09:02) = 180 s (bot answer does not count); resolution 1200 s;
//	    turn r1 -> b1 30 s.
//	cv2 10:00 opened, inbound r2 10:00 and r3 10:01 (one turn), escalated 10:04 and 10:10,
//	    agent bob a2 10:10 (the escalation at the same time counts as before: FRT 0 s),
//	    resolved by bob 10:30 and again by ann 10:50 (the first counts: 1800 s, agent bob);
//	    inbound r4 10:40 unanswered. Turns: 600 s, unanswered.
//	cv3 11:00 opened, inbound r5 11:00, bot b2 11:01 (60 s), resolved by bot 11:05 (300 s),
//	    never escalated: self-resolved; no agent message: no FRT.
//	cv4 12:00 opened, inbound r6 12:00, a campaign message 12:01 in the conversation (does
//	    not answer), abandoned 12:03 at step address. Turn unanswered.
func serviceEvents() []events.Event {
	return []events.Event{
		convEvent(events.TypeConversationOpened, at(9, 0), "cv1", withContact("u1"), withSender("customer"), withCampaign("help")),
		received("r1", at(9, 0), "u1", withConv("cv1")),
		sent("b1", sec(9, 0, 30), "u1", withConv("cv1"), withSender("bot")),
		convEvent(events.TypeEscalated, at(9, 2), "cv1"),
		sent("a1", at(9, 5), "u1", withConv("cv1"), withSender("agent"), withAgent("ann")),
		convEvent(events.TypeResolved, at(9, 20), "cv1", withSender("agent"), withAgent("dan")),
		convEvent(events.TypeCSAT, at(9, 30), "cv1", withAgent("dan"), withValue(5)),

		convEvent(events.TypeConversationOpened, at(10, 0), "cv2", withContact("u2"), withSender("customer")),
		received("r2", at(10, 0), "u2", withConv("cv2")),
		received("r3", at(10, 1), "u2", withConv("cv2")),
		convEvent(events.TypeEscalated, at(10, 4), "cv2"),
		convEvent(events.TypeEscalated, at(10, 10), "cv2", withAgent("bob")),
		sent("a2", at(10, 10), "u2", withConv("cv2"), withSender("agent"), withAgent("bob")),
		convEvent(events.TypeResolved, at(10, 30), "cv2", withSender("agent"), withAgent("bob")),
		received("r4", at(10, 40), "u2", withConv("cv2")),
		convEvent(events.TypeResolved, at(10, 50), "cv2", withSender("agent"), withAgent("ann")),
		convEvent(events.TypeCSAT, at(10, 55), "cv2", withAgent("bob"), withValue(3)),

		convEvent(events.TypeConversationOpened, at(11, 0), "cv3", withContact("u3"), withSender("customer")),
		received("r5", at(11, 0), "u3", withConv("cv3")),
		sent("b2", at(11, 1), "u3", withConv("cv3"), withSender("bot")),
		convEvent(events.TypeResolved, at(11, 5), "cv3", withSender("bot")),
		convEvent(events.TypeCSAT, at(11, 6), "cv3", withValue(4)),

		convEvent(events.TypeConversationOpened, at(12, 0), "cv4", withContact("u4"), withSender("customer")),
		received("r6", at(12, 0), "u4", withConv("cv4")),
		sent("c4", at(12, 1), "u4", withConv("cv4"), withCampaign("promo")),
		convEvent(events.TypeAbandoned, at(12, 3), "cv4", withStep("address")),

		// NPS answers: 10 and 9 promoters, 8 passive, 6 detractor -> (2 - 1) / 4 * 100 = 25.
		contactEvent(events.TypeNPS, at(13, 0), "u1", withValue(10)),
		contactEvent(events.TypeNPS, at(13, 1), "u2", withValue(9)),
		contactEvent(events.TypeNPS, at(13, 2), "u3", withValue(8)),
		contactEvent(events.TypeNPS, at(13, 3), "u4", withValue(6)),
	}
}

// TestServiceMetrics: conversation KPIs at opening time, response turns, statistics.
func TestServiceMetrics(t *testing.T) {
	f := newFixture(t, serviceEvents())
	from, to := base, base.AddDate(0, 0, 1)
	rows, _ := f.table(`{"queryType":"table","metrics":["conversations","first_response_time","first_response_time_p50","first_response_time_p90","response_time","unanswered_turns","resolution_time","resolution_time_p50","resolution_time_p90","escalation_rate","self_resolution_rate","abandonment_rate","abandoned","csat_avg","csat_satisfied","nps"]}`, from, to)
	expectRow(t, rows, "", map[string]*float64{
		"conversations": num(4),
		// FRT {180, 0}: avg 90, p50 90, p90 0 + 0.9 * 180 = 162 (interpolated).
		"first_response_time": num(90), "first_response_time_p50": num(90), "first_response_time_p90": num(162),
		// turns 30, 600, 60 (+ r4 and r6 unanswered): avg 230.
		"response_time": num(230), "unanswered_turns": num(2),
		// resolution {1200, 1800, 300}: avg 1100, p50 1200, p90 at 1.8 -> 1200 + 0.8 * 600 = 1680.
		"resolution_time": num(1100), "resolution_time_p50": num(1200), "resolution_time_p90": num(1680),
		"escalation_rate": num(2.0 / 4), "self_resolution_rate": num(1.0 / 4), "abandonment_rate": num(1.0 / 4),
		"abandoned": num(1),
		// csat 5, 3, 4: avg 4, satisfied 2/3.
		"csat_avg": num(4), "csat_satisfied": num(2.0 / 3), "nps": num(25),
	})

	// By agent: response times use the first agent message (ann for cv1, bob for cv2);
	// resolution the first resolved row (dan for cv1, bob for cv2, none for the bot's cv3).
	byAgent, _ := f.table(`{"queryType":"table","metrics":["first_response_time","resolution_time"],"groupBy":["agent_id"]}`, from, to)
	expectRow(t, byAgent, "ann", map[string]*float64{"first_response_time": num(180), "resolution_time": null})
	expectRow(t, byAgent, "bob", map[string]*float64{"first_response_time": num(0), "resolution_time": num(1800)})
	expectRow(t, byAgent, "dan", map[string]*float64{"first_response_time": null, "resolution_time": num(1200)})
	expectRow(t, byAgent, "<nil>", map[string]*float64{"resolution_time": num(300)})

	// Opening row dimensions: cv1 opened under campaign help.
	byCampaign, _ := f.table(`{"queryType":"table","metrics":["conversations","escalation_rate"],"groupBy":["campaign"]}`, from, to)
	expectRow(t, byCampaign, "help", map[string]*float64{"conversations": num(1), "escalation_rate": num(1)})
	expectRow(t, byCampaign, "<nil>", map[string]*float64{"conversations": num(3), "escalation_rate": num(1.0 / 3)})

	// abandoned by its own step.
	bySteps, _ := f.table(`{"queryType":"table","metrics":["abandoned"],"groupBy":["step"]}`, from, to)
	expectRow(t, bySteps, "address", map[string]*float64{"abandoned": num(1)})
}

// TestConversationCreditedAtOpening: a conversation opened late on day 0 and resolved on
// day 1 counts on day 0 with its whole resolution time; the turn is credited at its start.
func TestConversationCreditedAtOpening(t *testing.T) {
	f := newFixture(t, []events.Event{
		convEvent(events.TypeConversationOpened, day(0, 23, 30), "cv", withContact("u")),
		received("r1", day(0, 23, 50), "u", withConv("cv")),
		sent("a1", day(1, 0, 20), "u", withConv("cv"), withSender("agent"), withAgent("ann")),
		convEvent(events.TypeEscalated, day(1, 0, 10), "cv"),
		convEvent(events.TypeResolved, day(1, 0, 30), "cv", withSender("agent"), withAgent("ann")),
		// a second conversation_opened row for the same conversation does not count twice.
		convEvent(events.TypeConversationOpened, day(1, 1, 0), "cv", withContact("u")),
		// an agent message in a conversation without conversation_opened: no conversation.
		sent("a2", day(1, 2, 0), "v", withConv("other"), withSender("agent"), withAgent("ann")),
	})
	s := f.series(`{"queryType":"timeseries","metrics":["conversations","resolution_time","first_response_time","escalation_rate","response_time"],"bucket":"1d"}`, base, base.AddDate(0, 0, 2))
	expectSeries(t, s, "", "conversations", num(1), num(0))
	expectSeries(t, s, "", "resolution_time", num(3600), null)
	// FRT: agent 00:20 minus the later of opening (23:30) and escalation (00:10) = 600 s.
	expectSeries(t, s, "", "first_response_time", num(600), null)
	expectSeries(t, s, "", "escalation_rate", num(1), null)
	// turn 23:50 -> 00:20 = 1800 s, at day 0.
	expectSeries(t, s, "", "response_time", num(1800), null)
}

// SPEC 5 "Conversations": turns across a campaign message (it neither answers nor splits a
// turn), an escalation after the agent message does not move FRT, a bot-only conversation
// has no FRT, csat groups by the event's own agent.
func TestTurnsAndFirstResponseEdges(t *testing.T) {
	f := newFixture(t, []events.Event{
		// cv1: inbound 12:00, campaign message 12:01, inbound 12:02, bot 12:04: one turn of
		// 240 s; then inbound 12:10 and agent 12:15 (300 s); escalation at 12:20, after the
		// agent message: FRT = 12:15 - 12:00 = 900 s.
		convEvent(events.TypeConversationOpened, at(12, 0), "cv1", withContact("u1")),
		received("r1", at(12, 0), "u1", withConv("cv1")),
		sent("c1", at(12, 1), "u1", withConv("cv1"), withCampaign("promo")),
		received("r2", at(12, 2), "u1", withConv("cv1")),
		sent("b1", at(12, 4), "u1", withConv("cv1"), withSender("bot")),
		received("r3", at(12, 10), "u1", withConv("cv1")),
		sent("a1", at(12, 15), "u1", withConv("cv1"), withSender("agent"), withAgent("ann")),
		convEvent(events.TypeEscalated, at(12, 20), "cv1"),
		// cv2: bot answers only: a turn of 60 s, no FRT.
		convEvent(events.TypeConversationOpened, at(13, 0), "cv2", withContact("u2")),
		received("r4", at(13, 0), "u2", withConv("cv2")),
		sent("b2", at(13, 1), "u2", withConv("cv2"), withSender("bot")),
		convEvent(events.TypeCSAT, at(13, 5), "cv2", withAgent("zed"), withValue(2)),
		convEvent(events.TypeCSAT, at(13, 6), "cv1", withAgent("ann"), withValue(5)),
	})
	rows, _ := f.table(`{"queryType":"table","metrics":["response_time","unanswered_turns","first_response_time","first_response_time_p90","escalation_rate"]}`, base, base.AddDate(0, 0, 1))
	// turns 240, 300, 60: avg 200; FRT only cv1: 900 (p90 of one value is that value).
	expectRow(t, rows, "", map[string]*float64{"response_time": num(200), "unanswered_turns": num(0),
		"first_response_time": num(900), "first_response_time_p90": num(900), "escalation_rate": num(0.5)})
	byAgent, _ := f.table(`{"queryType":"table","metrics":["csat_avg","csat_satisfied"],"groupBy":["agent_id"]}`, base, base.AddDate(0, 0, 1))
	expectRow(t, byAgent, "ann", map[string]*float64{"csat_avg": num(5), "csat_satisfied": num(1)})
	expectRow(t, byAgent, "zed", map[string]*float64{"csat_avg": num(2), "csat_satisfied": num(0)})
}
