package demo

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// TestReport prints a KPI summary of a default-size history (DEMO_REPORT=1): a quick look
// at whether the simulated traffic is believable.
func TestReport(t *testing.T) {
	if os.Getenv("DEMO_REPORT") == "" {
		t.Skip("set DEMO_REPORT=1")
	}
	type mrec struct {
		ts                                  time.Time
		camp, cat, variant, country, sender string
		del, read, fail, click              bool
	}
	msgs := map[string]*mrec{}
	seen := map[string]bool{}
	var pending []events.Event
	type crec struct {
		open, esc, firstAgent        time.Time
		escalated, botRes, abandoned bool
	}
	convs := map[string]*crec{}
	count := map[string]int{}
	csat := map[string][]float64{}
	var nps []float64
	errs := map[int32]int{}
	steps := map[string]int{}
	blockDay := map[string]int{}
	delDay := map[string]int{}
	n := 0
	err := Generate(Config{Seed: 5, End: testEnd}, func(e *events.Event) error {
		n++
		if seen[e.EventID] {
			return nil
		}
		seen[e.EventID] = true
		count[e.Type]++
		switch e.Type {
		case events.TypeSent:
			msgs[e.MessageID] = &mrec{ts: e.TS, camp: e.Campaign, cat: e.Category, variant: e.Variant, country: e.Country, sender: e.Sender}
			if e.Sender == "agent" && e.ConversationID != "" {
				if c := convs[e.ConversationID]; c != nil && c.firstAgent.IsZero() {
					c.firstAgent = e.TS
				}
			}
		case events.TypeDelivered, events.TypeRead, events.TypeFailed, events.TypeClicked:
			pending = append(pending, *e)
		case events.TypeConversationOpened:
			convs[e.ConversationID] = &crec{open: e.TS}
		case events.TypeEscalated:
			if c := convs[e.ConversationID]; c != nil {
				c.escalated, c.esc = true, e.TS
			}
		case events.TypeResolved:
			if c := convs[e.ConversationID]; c != nil && e.Sender == "bot" {
				c.botRes = true
			}
		case events.TypeAbandoned:
			steps[e.Step]++
			if c := convs[e.ConversationID]; c != nil {
				c.abandoned = true
			}
		case events.TypeCSAT:
			csat[e.AgentID] = append(csat[e.AgentID], *e.Value)
		case events.TypeNPS:
			nps = append(nps, *e.Value)
		case events.TypeBlocked:
			blockDay[e.TS.Format("01-02")]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]time.Time{}
	for _, e := range pending {
		m := msgs[e.MessageID]
		if e.Type == events.TypeClicked {
			m = msgs[e.ReplyTo]
		}
		if m == nil {
			continue
		}
		switch e.Type {
		case events.TypeDelivered:
			m.del = true
		case events.TypeRead:
			m.del, m.read = true, true
		case events.TypeFailed:
			m.fail = true
			errs[*e.ErrorCode]++
		case events.TypeClicked:
			m.click = true
		}
		if e.Type == events.TypeDelivered || e.Type == events.TypeRead {
			if f, ok := first[e.MessageID]; !ok || e.TS.Before(f) {
				first[e.MessageID] = e.TS
			}
		}
	}
	for _, ts := range first {
		delDay[ts.Format("01-02")]++
	}
	t.Logf("events %d, messages %d", n, len(msgs))
	t.Logf("counts %v", count)
	type agg struct{ sent, del, read, fail, click int }
	by := func(name string, f func(*mrec) string) {
		m := map[string]*agg{}
		for _, r := range msgs {
			k := f(r)
			a := m[k]
			if a == nil {
				a = &agg{}
				m[k] = a
			}
			a.sent++
			if r.del {
				a.del++
			}
			if r.read {
				a.read++
			}
			if r.fail {
				a.fail++
			}
			if r.click {
				a.click++
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			a := m[k]
			t.Logf("%-8s %-24s sent %7d delivery %.3f read %.3f fail %.3f click %.3f", name, k, a.sent,
				float64(a.del)/float64(a.sent), float64(a.read)/float64(a.del), float64(a.fail)/float64(a.sent), float64(a.click)/float64(a.del))
		}
	}
	by("campaign", func(r *mrec) string { return r.camp + "/" + r.sender })
	by("category", func(r *mrec) string { return r.cat })
	by("country", func(r *mrec) string { return r.country })
	by("variant", func(r *mrec) string { return r.variant })
	t.Logf("errors %v", errs)
	t.Logf("abandoned steps %v", steps)
	var nc, esc, botres, ab int
	var frts []float64
	for _, c := range convs {
		nc++
		if c.escalated {
			esc++
		}
		if c.botRes && !c.escalated {
			botres++
		}
		if c.abandoned {
			ab++
		}
		if !c.firstAgent.IsZero() {
			s := c.open
			if !c.esc.IsZero() && c.esc.After(s) && !c.esc.After(c.firstAgent) {
				s = c.esc
			}
			frts = append(frts, c.firstAgent.Sub(s).Seconds())
		}
	}
	sort.Float64s(frts)
	t.Logf("conversations %d escalation %.3f self-resolution %.3f abandonment %.3f FRT p50 %.0fs p90 %.0fs",
		nc, float64(esc)/float64(nc), float64(botres)/float64(nc), float64(ab)/float64(nc), frts[len(frts)/2], frts[len(frts)*9/10])
	for a, v := range csat {
		var s float64
		for _, x := range v {
			s += x
		}
		t.Logf("csat %-14s %.2f (%d)", a, s/float64(len(v)), len(v))
	}
	var pro, det int
	for _, v := range nps {
		if v >= 9 {
			pro++
		} else if v <= 6 {
			det++
		}
	}
	t.Logf("nps %.0f (%d answers)", 100*float64(pro-det)/float64(len(nps)), len(nps))
	days := make([]string, 0, len(delDay))
	for d := range delDay {
		days = append(days, d)
	}
	sort.Strings(days)
	for _, d := range days {
		t.Logf("day %s delivered %6d blocked %4d rate %.4f", d, delDay[d], blockDay[d], float64(blockDay[d])/float64(delDay[d]))
	}
}
