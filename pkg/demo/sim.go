package demo

import (
	"math"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// msg is one outbound message about to be sent.
type msg struct {
	ts       int64
	c        contact
	number   string
	sender   string
	camp     *campaign // nil for bot and agent messages inside conversations
	campaign string
	template string
	category string
	variant  string
	msgType  string
	pricing  string
	price    float64
	conv     string
	agent    string
	force    int32 // a failure code forced by the caller (131047 outside the service window)
}

func (g *gen) stream(s int, ts int64) {
	switch s {
	case sOrders:
		g.broadcast(cOrders, ts)
	case sOTP:
		g.broadcast(cOTP, ts)
	case sCart:
		g.broadcast(cCart, ts)
	case sOptIn:
		g.optIn(ts)
	case sConvCustomer:
		g.customerConversation(ts)
	case sConvAgent:
		g.agentConversation(ts)
	case sConvBot:
		g.botConversation(ts)
	case sOrganic:
		g.organic(ts)
	}
}

func (g *gen) broadcast(ci int, ts int64) {
	cp := &campaigns[ci]
	c := g.pickContact(ts, cp.segs)
	g.campaignMessage(cp, c, ts)
}

func (g *gen) campaignMessage(cp *campaign, c contact, ts int64) {
	m := msg{ts: ts, c: c, number: cp.number, sender: cp.sender, camp: cp, campaign: cp.name,
		template: cp.template, category: cp.category, msgType: "template", pricing: "regular"}
	if cp.ab {
		if g.r.chance(0.5) {
			m.variant = "control"
		} else {
			m.variant = "variant_b"
		}
	}
	switch cp.category {
	case catMarketing, catLite:
		m.price = c.country.priceMkt
	case catUtility:
		m.price = c.country.priceUtl
	case catAuth:
		m.price = c.country.priceAut
		if c.country.priceInt > 0 {
			m.category, m.price = catAuthIntl, c.country.priceInt
		}
	}
	id, dAt, rAt := g.send(&m)
	g.engage(&m, id, dAt, rAt)
}

// send emits a sent event and the message's statuses; it returns the message id and its
// delivery and read times (0: never).
func (g *gen) send(m *msg) (id string, dAt, rAt int64) {
	r := &g.r
	id = g.wamid()
	if m.camp == nil || !r.chance(lostSent) {
		e := events.Event{EventID: id + ":sent", Type: events.TypeSent, MessageID: id, ContactID: m.c.id,
			BusinessNumber: m.number, Sender: m.sender, AgentID: m.agent, ConversationID: m.conv,
			Campaign: m.campaign, Template: m.template, Category: m.category, Variant: m.variant,
			Segment: segNames[m.c.seg], Country: m.c.country.code, MessageType: m.msgType,
			PricingType: m.pricing, Value: g.fl(m.price), Currency: currency}
		g.put(&e, m.ts)
	}
	code := m.force
	if code == 0 {
		code = g.failure(m)
	}
	if code != 0 {
		g.status(id, events.TypeFailed, m.ts+r.logn(2*usSec, 1), code)
		return id, 0, 0
	}
	if !r.chance(0.988) { // accepted, never delivered (phone gone), no status ever
		return id, 0, 0
	}
	if r.chance(m.c.country.offline) {
		dAt = m.ts + r.logn(25*usMin, 1.4)
	} else {
		dAt = m.ts + 300_000 + r.logn(2*usSec, 0.8)
	}
	if r.chance(g.readP(m)) {
		rAt = dAt + g.readDelay(m, dAt)
	}
	if rAt == 0 || !r.chance(0.04) { // 4 % of reads arrive without their delivered
		g.status(id, events.TypeDelivered, dAt, 0)
	}
	if rAt != 0 {
		g.status(id, events.TypeRead, rAt, 0)
	}
	if r.chance(0.001) { // the feed says failed after all: both statuses
		g.status(id, events.TypeFailed, dAt+r.logn(30*usSec, 1), 131000)
	}
	return id, dAt, rAt
}

func (g *gen) status(id, typ string, ts int64, code int32) {
	e := events.Event{EventID: id + ":" + typ, Type: typ, MessageID: id}
	if code != 0 {
		e.ErrorCode = g.code(code)
	}
	g.put(&e, ts)
}

func (g *gen) failure(m *msg) int32 {
	r := &g.r
	u := r.f()
	if m.camp == nil {
		switch {
		case u < 0.003:
			return 131026
		case u < 0.004:
			return 131000
		}
		return 0
	}
	cp := m.camp
	p := m.c.country.undeliv
	if u < p {
		return 131026
	}
	if m.category == catMarketing || m.category == catLite {
		lim := cp.limit
		if m.c.seg == segInactive {
			lim *= 1.5
		}
		if p += lim; u < p {
			return 131049
		}
		stop := 0.003
		if m.c.seg == segInactive {
			stop = 0.008
		}
		if p += stop; u < p {
			return 131050
		}
		if m.category == catMarketing {
			if p += 0.006; u < p {
				return 130472
			}
		}
	}
	if p += 0.0015; u < p {
		return 131000
	}
	return 0
}

func (g *gen) readP(m *msg) float64 {
	if m.camp == nil {
		return 0.93
	}
	p := m.camp.read * segRead[m.c.seg] * m.c.country.readMul
	if m.variant == "variant_b" {
		p += abReadLift
	}
	return math.Min(p, 0.97)
}

func (g *gen) readDelay(m *msg, dAt int64) int64 {
	r := &g.r
	var d int64
	switch {
	case m.camp == nil:
		return r.logn(8*usSec, 1)
	case m.category == catAuth || m.category == catAuthIntl:
		return r.logn(20*usSec, 1)
	case m.category == catUtility:
		d = r.logn(6*usMin, 1.5)
	default:
		d = r.logn(30*usMin, 1.6)
	}
	if lh := localHour(dAt, m.c.country.utcOff); lh < 7 && r.chance(0.85) {
		d += int64(7-lh)*usHour + r.between(0, 2*usHour)
	}
	if d > 3*usDay {
		d = 3 * usDay
	}
	return d
}

// engage plays what a delivered broadcast causes: churn, clicks, replies, conversions.
func (g *gen) engage(m *msg, id string, dAt, rAt int64) {
	if dAt == 0 {
		return
	}
	r := &g.r
	cp := m.camp
	seg := m.c.seg
	seen := dAt
	if rAt != 0 {
		seen = rAt
	}
	churnMul := segBlock[seg]
	if cp.spike {
		churnMul = 0.6 + 0.4*churnMul // an aggressive blast annoys everyone
	}
	if r.chance(cp.block * churnMul) {
		g.churn(events.TypeBlocked, m, g.churnTime(seen))
	}
	if r.chance(cp.optout * churnMul) {
		t := g.churnTime(seen)
		if r.chance(0.5) { // "STOP"
			rid := g.wamid()
			e := events.Event{EventID: rid + ":received", Type: events.TypeReceived, MessageID: rid, ReplyTo: id,
				ContactID: m.c.id, BusinessNumber: m.number, Sender: "customer", MessageType: "text"}
			g.put(&e, t-r.between(2*usSec, 20*usSec))
		}
		g.churn(events.TypeOptedOut, m, t)
	}
	if r.chance(cp.report * churnMul) {
		g.churn(events.TypeReported, m, g.churnTime(seen))
	}
	if rAt == 0 {
		return
	}
	var clickAt int64
	if cp.button {
		pc := cp.click
		if m.variant == "variant_b" {
			pc += abClickLift
		}
		if r.chance(pc) {
			clickAt = rAt + r.logn(25*usSec, 1.2)
			e := events.Event{EventID: g.evtID(), Type: events.TypeClicked, ReplyTo: id, ContactID: m.c.id}
			g.put(&e, clickAt)
		}
	}
	if r.chance(cp.reply * segReply[seg]) {
		g.reply(m, id, rAt)
	}
	pc := cp.conv * segConv[seg]
	if clickAt == 0 {
		pc *= 0.08
	}
	if r.chance(pc) {
		g.convert(m, id, rAt, clickAt)
	}
}

func (g *gen) churnTime(seen int64) int64 {
	if g.r.chance(0.07) {
		return seen + g.r.between(26*usHour, 72*usHour)
	}
	return seen + g.r.logn(12*usMin, 1.3)
}

func (g *gen) churn(typ string, m *msg, t int64) {
	e := events.Event{EventID: g.evtID(), Type: typ, ContactID: m.c.id, BusinessNumber: m.number}
	g.put(&e, t)
}

func (g *gen) reply(m *msg, id string, rAt int64) {
	r := &g.r
	t := rAt + r.logn(3*usMin, 1.2)
	replyTo := id
	switch u := r.f(); {
	case u < 0.55:
	case u < 0.9: // no context: credited by last touch
		replyTo = ""
	default: // a day later, no context: outside the 24 h window
		replyTo = ""
		t = m.ts + r.between(25*usHour, 40*usHour)
	}
	if m.number == numShop && r.chance(0.35) {
		g.conversation("campaign", t, m.c, m.number, m.campaign, replyTo, "free_customer_service")
		return
	}
	g.inbound(m.c, m.number, "", replyTo, t)
}

func (g *gen) inbound(c contact, number, conv, replyTo string, t int64) {
	r := &g.r
	rid := g.wamid()
	mt := "text"
	switch u := r.f(); {
	case u < 0.35 && replyTo != "":
		mt = "button"
	case u < 0.45:
		mt = "interactive"
	case u < 0.5:
		mt = "image"
	}
	e := events.Event{EventID: rid + ":received", Type: events.TypeReceived, MessageID: rid, ReplyTo: replyTo,
		ConversationID: conv, ContactID: c.id, BusinessNumber: number, Sender: "customer", MessageType: mt}
	g.put(&e, t)
}

func (g *gen) convert(m *msg, id string, rAt, clickAt int64) {
	r := &g.r
	var t int64
	switch u := r.f(); {
	case u < 0.6:
		base := rAt
		if clickAt != 0 {
			base = clickAt
		}
		t = base + r.logn(40*usMin, 1.3)
		if t > m.ts+23*usHour {
			t = m.ts + r.between(usHour, 23*usHour)
		}
	case u < 0.9:
		t = m.ts + r.between(25*usHour, 7*usDay-usHour)
	default:
		t = m.ts + r.between(7*usDay+2*usHour, 9*usDay)
	}
	if t < rAt {
		t = rAt + usMin
	}
	g.conversion(m.c, t, id, m.campaign)
}

func (g *gen) conversion(c contact, t int64, id, camp string) {
	r := &g.r
	v := 45 * math.Exp(0.7*r.norm())
	if c.seg == segVIP {
		v *= 1.8
	}
	v = math.Round(math.Min(300, math.Max(10, v))*100) / 100
	e := events.Event{EventID: g.evtID(), Type: events.TypeConverted, ContactID: c.id, Value: g.fl(v), Currency: currency}
	if id != "" && r.chance(0.5) {
		e.ReplyTo = id
	}
	if camp != "" && r.chance(0.3) { // the CRM's own campaign tag
		e.Campaign = camp
	}
	g.put(&e, t)
}

func (g *gen) optIn(ts int64) {
	r := &g.r
	n := g.population(ts)
	idx := n - 1 - r.n(n/50+1)
	if idx < 0 {
		idx = 0
	}
	c := g.contactOf(idx/20*20 + r.n(segWidth[segNew]))
	e := events.Event{EventID: g.evtID(), Type: events.TypeOptedIn, ContactID: c.id, BusinessNumber: numShop,
		Country: c.country.code, Segment: segNames[c.seg]}
	g.put(&e, ts)
	if r.chance(0.9) {
		g.campaignMessage(&campaigns[cWelcome], c, ts+r.logn(20*usSec, 0.5))
	}
}

// organic traffic with no campaign behind it.
func (g *gen) organic(ts int64) {
	r := &g.r
	c := g.pickContact(ts, nil)
	switch u := r.f(); {
	case u < 0.5: // a purchase no message can be credited with
		g.conversion(c, ts, "", "")
	case u < 0.9: // an unsolicited message nobody answers
		g.inbound(c, numShop, "", "", ts)
	default: // opted out in the app settings
		e := events.Event{EventID: g.evtID(), Type: events.TypeOptedOut, ContactID: c.id, BusinessNumber: numShop}
		g.put(&e, ts)
	}
}

func (g *gen) pickAgent() *agent {
	var tot float64
	for i := range agents {
		tot += agents[i].w
	}
	u := g.r.f() * tot
	for i := range agents {
		if u -= agents[i].w; u < 0 {
			return &agents[i]
		}
	}
	return &agents[0]
}

// busy is how much slower humans answer at time t: peaks, nights and weekends.
func busy(t int64) float64 {
	f := 1.0
	switch h := localHour(t, bizUTCOffs); {
	case h < 8 || h >= 21:
		f = 7
	case h == 11 || h == 12 || h == 17 || h == 18:
		f = 2.2
	}
	if wd := weekday(t); wd == 0 || wd == 6 {
		f *= 1.5
	}
	return f
}

func (g *gen) say(c contact, number, conv, sender string, a *agent, t int64, pricing string) int64 {
	m := msg{ts: t, c: c, number: number, sender: sender, conv: conv, category: catService,
		pricing: pricing, msgType: "text"}
	u := g.r.f()
	if sender == "bot" {
		if u < 0.6 {
			m.msgType = "interactive"
		}
	} else {
		m.agent = a.id
		if u < 0.1 {
			m.msgType = "image"
		} else if u < 0.15 {
			m.msgType = "document"
		}
	}
	g.send(&m)
	return t
}

func (g *gen) customerConversation(ts int64) {
	c := g.pickContact(ts, activeSegs)
	if g.r.chance(0.2) { // from a click-to-WhatsApp ad
		g.conversation("customer", ts, c, numShop, "", "", "free_entry_point")
		return
	}
	g.conversation("customer", ts, c, numCare, "", "", "free_customer_service")
}

func (g *gen) botConversation(ts int64) {
	c := g.pickContact(ts, activeSegs)
	g.conversation("bot", ts, c, numShop, "", "", "regular")
}

func (g *gen) opened(conv string, t0 int64, c contact, number, opener, campaign string) {
	e := events.Event{EventID: g.evtID(), Type: events.TypeConversationOpened, ConversationID: conv,
		ContactID: c.id, BusinessNumber: number, Sender: opener, Campaign: campaign,
		Country: c.country.code, Segment: segNames[c.seg]}
	g.put(&e, t0)
}

// conversation plays a bot-first conversation: a few bot turns, then escalation to a
// human, self-resolution, abandonment or silence.
func (g *gen) conversation(opener string, t0 int64, c contact, number, campaign, replyTo, pricing string) {
	r := &g.r
	conv := g.convID()
	g.opened(conv, t0, c, number, opener, campaign)
	flow := 0
	if u := r.f(); u > 0.45 {
		flow = 1
		if u > 0.8 {
			flow = 2
		}
	}
	steps := flowSteps[flow]
	t := t0
	if opener == "bot" { // a proactive template (delivery slot, cart recovery): paid
		m := msg{ts: t, c: c, number: number, sender: "bot", conv: conv, template: "delivery_slot_picker",
			category: catUtility, pricing: pricing, price: c.country.priceUtl, msgType: "template"}
		g.send(&m)
		pricing = "free_customer_service"
		if !r.chance(0.7) {
			return // ignored
		}
		t += r.logn(6*usMin, 1.2)
		replyTo = ""
	}
	g.inbound(c, number, conv, replyTo, t)
	turns := 1 + r.n(3)
	for i := 0; i < turns; i++ {
		t = g.say(c, number, conv, "bot", nil, t+r.logn(2*usSec, 0.6), pricing)
		if i < turns-1 {
			t += r.logn(35*usSec, 0.9)
			g.inbound(c, number, conv, "", t)
		}
	}
	pEsc := [...]float64{0.28, 0.38, 0.55}[flow]
	switch u := r.f(); {
	case u < pEsc:
		g.escalate(c, number, conv, t, pricing)
	case u < pEsc+0.45:
		tr := t + r.logn(20*usSec, 0.7)
		e := events.Event{EventID: g.evtID(), Type: events.TypeResolved, ConversationID: conv, Sender: "bot", BusinessNumber: number}
		g.put(&e, tr)
		g.survey(conv, number, nil, 3.8, tr, 0.3, 0.12)
	case u < pEsc+0.65:
		step := steps[r.n(len(steps))]
		if r.chance(0.4) { // a last message the bot never answers
			t += r.logn(50*usSec, 0.8)
			g.inbound(c, number, conv, "", t)
		}
		e := events.Event{EventID: g.evtID(), Type: events.TypeAbandoned, ConversationID: conv, Step: step, BusinessNumber: number}
		g.put(&e, t+r.between(15*usMin, 40*usMin))
	}
}

func (g *gen) escalate(c contact, number, conv string, t int64, pricing string) {
	r := &g.r
	a := g.pickAgent()
	te := t + r.between(2*usSec, 10*usSec)
	e := events.Event{EventID: g.evtID(), Type: events.TypeEscalated, ConversationID: conv, AgentID: a.id,
		BusinessNumber: number, Sender: "bot"}
	g.put(&e, te)
	frt := int64(float64(a.frt*usSec) * busy(te) * math.Exp(0.7*r.norm()))
	if frt > 15*usMin && r.chance(0.4) { // tired of waiting
		g.inbound(c, number, conv, "", te+frt/3)
		ab := events.Event{EventID: g.evtID(), Type: events.TypeAbandoned, ConversationID: conv, Step: "waiting_for_agent", BusinessNumber: number}
		g.put(&ab, te+frt/3+r.between(5*usMin, 20*usMin))
		if r.chance(0.5) {
			return
		}
	} else if r.chance(0.3) { // "hello?"
		g.inbound(c, number, conv, "", te+frt/2)
	}
	ta := g.say(c, number, conv, "agent", a, te+frt, pricing)
	g.agentTurns(c, number, conv, a, ta, pricing, r.n(3))
}

func (g *gen) agentTurns(c contact, number, conv string, a *agent, ta int64, pricing string, k int) {
	r := &g.r
	for i := 0; i < k; i++ {
		tc := ta + r.logn(50*usSec, 0.9)
		g.inbound(c, number, conv, "", tc)
		ta = g.say(c, number, conv, "agent", a, tc+int64(float64(a.resp*usSec)*math.Sqrt(busy(tc))*math.Exp(0.6*r.norm())), pricing)
	}
	if r.chance(0.88) {
		tr := ta + r.logn(2*usMin, 0.8)
		e := events.Event{EventID: g.evtID(), Type: events.TypeResolved, ConversationID: conv, Sender: "agent", AgentID: a.id, BusinessNumber: number}
		g.put(&e, tr)
		g.survey(conv, number, a, a.csat, tr, 0.55, 0.25)
	}
	if r.chance(0.15) { // "thanks!" that nobody answers
		g.inbound(c, number, conv, "", ta+r.logn(usMin, 0.8))
	}
}

func (g *gen) agentConversation(ts int64) {
	r := &g.r
	c := g.pickContact(ts, activeSegs)
	a := g.pickAgent()
	conv := g.convID()
	g.opened(conv, ts, c, numCare, "agent", "")
	t := ts
	if r.chance(0.2) { // free-form text outside the 24 h window: rejected
		m := msg{ts: t, c: c, number: numCare, sender: "agent", agent: a.id, conv: conv, category: catService,
			pricing: "free_customer_service", msgType: "text", force: 131047}
		g.send(&m)
		t += r.between(2*usMin, 6*usMin)
	}
	m := msg{ts: t, c: c, number: numCare, sender: "agent", agent: a.id, conv: conv, template: "order_follow_up",
		category: catUtility, pricing: "regular", price: c.country.priceUtl, msgType: "template"}
	g.send(&m)
	if !r.chance(0.6) {
		return
	}
	tc := t + r.logn(20*usMin, 1.2)
	g.inbound(c, numCare, conv, "", tc)
	ta := g.say(c, numCare, conv, "agent", a, tc+int64(float64(a.resp*usSec)*busy(tc)*math.Exp(0.6*r.norm())), "free_customer_service")
	g.agentTurns(c, numCare, conv, a, ta, "free_customer_service", r.n(2))
}

func (g *gen) survey(conv, number string, a *agent, mean float64, t int64, pCSAT, pNPS float64) {
	r := &g.r
	agentID := ""
	if a != nil {
		agentID = a.id
	}
	score := math.Round(mean + 0.9*r.norm())
	score = math.Min(5, math.Max(1, score))
	if r.chance(pCSAT) {
		e := events.Event{EventID: g.evtID(), Type: events.TypeCSAT, ConversationID: conv, AgentID: agentID,
			BusinessNumber: number, Value: g.fl(score)}
		g.put(&e, t+r.logn(3*usMin, 0.8))
	}
	if r.chance(pNPS) {
		n := math.Min(10, math.Max(0, math.Round(score*2+0.2+1.3*r.norm())))
		e := events.Event{EventID: g.evtID(), Type: events.TypeNPS, ConversationID: conv, AgentID: agentID,
			BusinessNumber: number, Value: g.fl(n)}
		g.put(&e, t+r.logn(5*usMin, 0.8))
	}
}
