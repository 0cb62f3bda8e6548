// Package kpi is the KPI engine: the metric catalog (this file: the one place where a KPI
// is defined), the query model, the derived fact tables and the SQL builder.
//
// A metric is data: the fact table it reads, its SQL aggregate (or numerator and
// denominator for a rate), its unit and its definition. Adding a metric adds one entry to
// Metrics; adding a dimension adds one entry to Dimensions (and a column to the fact
// tables in facts.go if it is new).
package kpi

import "sort"

// Area groups metrics the way the dashboards do.
type Area string

const (
	AreaDelivery     Area = "delivery"
	AreaEngagement   Area = "engagement"
	AreaConversion   Area = "conversion"
	AreaChurnQuality Area = "churn_quality"
	AreaService      Area = "service"
)

// Kind is what a metric's number is.
type Kind string

const (
	KindCount    Kind = "count"
	KindRate     Kind = "rate"     // a fraction 0..1
	KindCurrency Kind = "currency" // money, in the events' currency
	KindDuration Kind = "duration" // seconds
	KindScore    Kind = "score"    // csat 1..5, nps -100..100
	KindState    Kind = "state"    // quality rating 0 GREEN, 1 YELLOW, 2 RED
)

// Fact is a derived table the engine maintains (facts.go).
type Fact string

const (
	FactMessage      Fact = "f_msg"     // one row per message, at its send time
	FactEvent        Fact = "f_evt"     // one row per event, at its own time
	FactConversation Fact = "f_conv"    // one row per conversation, at its opening time
	FactTurn         Fact = "f_turn"    // one row per customer turn, at its start
	FactQuality      Fact = "f_quality" // quality changes (state carried forward)
)

// Time semantics shown to users.
const (
	semSend  = "message outcome: credited to the send time and the dimensions of the message"
	semEvent = "event: counted at its own time"
	semConv  = "conversation: credited to the conversation's opening time"
	semTurn  = "customer turn: credited to the time the turn started"
	semState = "state at the end of each bucket, carried forward from the last change"
)

// Metric is one KPI of the catalog.
type Metric struct {
	ID          string
	Name        string
	Area        Area
	Kind        Kind
	Fact        Fact
	Expr        string // aggregate SQL for non-ratio metrics; {bucket} is the bucket start
	Num, Den    string // for ratios (rates, revenue per message): numerator / denominator
	AgentColumn string // fact column that the agent_id dimension means for this metric
	Description string
}

// Ratio reports whether the metric is a numerator over a denominator.
func (m *Metric) Ratio() bool { return m.Den != "" }

// Additive metrics read 0 in an empty bucket; the others read null (no denominator).
func (m *Metric) Additive() bool {
	return !m.Ratio() && (m.Kind == KindCount || m.Kind == KindCurrency)
}

// Unit is the Grafana field unit.
func (m *Metric) Unit() string {
	switch m.Kind {
	case KindRate:
		return "percentunit"
	case KindDuration:
		return "s"
	case KindCurrency:
		return "currencyEUR"
	}
	return "none"
}

// TimeSemantics says how the metric is placed in time.
func (m *Metric) TimeSemantics() string {
	switch m.Fact {
	case FactMessage:
		return semSend
	case FactConversation:
		return semConv
	case FactTurn:
		return semTurn
	case FactQuality:
		return semState
	}
	return semEvent
}

// Shapes lists the query types the metric supports.
func (m *Metric) Shapes() []string {
	switch {
	case m.Fact == FactQuality:
		return []string{"timeseries", "table"}
	case m.Fact == FactMessage && m.Kind == KindRate:
		return []string{"timeseries", "table", "ab"}
	}
	return []string{"timeseries", "table"}
}

const (
	delivered = "count(*) FILTER (WHERE is_delivered)"
	sentAll   = "count(*)"
)

// Sums and averages add exact decimals (micro-units: cents, microseconds), never floats,
// so a sum does not depend on the order rows are added in: the rollups (rollup.go) and
// the facts give the same numbers to the last bit. A value a decimal cannot hold (NaN,
// infinity, beyond 10^32, possible only in a user's own Parquet or DuckDB store) is left
// out, like a missing one (docs/KPIS.md).
const exact = "DECIMAL(38,6)"

// total is the sum of column x, 0 over no rows.
func total(x string) string { return "coalesce(sum(TRY_CAST(" + x + " AS " + exact + ")), 0)" }

// mean is the average of column x over the rows matching filter ("" for all), NULL over none.
func mean(x, filter string) string {
	if filter != "" {
		filter = " FILTER (WHERE " + filter + ")"
	}
	return "sum(TRY_CAST(" + x + " AS " + exact + "))" + filter + " / NULLIF(count(TRY_CAST(" + x + " AS " + exact + "))" + filter + ", 0)"
}

// Metrics is the KPI catalog (SPEC section 2). docs/KPIS.md explains each in prose.
var Metrics = []Metric{
	// Delivery: message outcomes, at send time.
	{ID: "sent", Name: "Messages sent", Area: AreaDelivery, Kind: KindCount, Fact: FactMessage, Expr: sentAll,
		Description: "Messages sent: distinct message_id with a sent event."},
	{ID: "delivered", Name: "Messages delivered", Area: AreaDelivery, Kind: KindCount, Fact: FactMessage, Expr: delivered,
		Description: "Messages delivered: a delivered or read status, or a credited click or reply."},
	{ID: "read", Name: "Messages read", Area: AreaDelivery, Kind: KindCount, Fact: FactMessage, Expr: "count(*) FILTER (WHERE is_read)",
		Description: "Messages with a read status."},
	{ID: "failed", Name: "Messages failed", Area: AreaDelivery, Kind: KindCount, Fact: FactMessage, Expr: "count(*) FILTER (WHERE is_failed)",
		Description: "Messages with a failed status; group by error_code to see why."},
	{ID: "delivery_rate", Name: "Delivery rate", Area: AreaDelivery, Kind: KindRate, Fact: FactMessage, Num: delivered, Den: sentAll,
		Description: "Delivered / sent, of the messages sent in the bucket."},
	{ID: "read_rate", Name: "Read rate (open rate)", Area: AreaDelivery, Kind: KindRate, Fact: FactMessage,
		Num: "count(*) FILTER (WHERE is_read AND is_delivered)", Den: delivered,
		Description: "Read / delivered, of the messages sent in the bucket."},
	{ID: "failure_rate", Name: "Failure rate", Area: AreaDelivery, Kind: KindRate, Fact: FactMessage,
		Num: "count(*) FILTER (WHERE is_failed)", Den: sentAll,
		Description: "Failed / sent, of the messages sent in the bucket."},
	{ID: "cost", Name: "Cost", Area: AreaDelivery, Kind: KindCurrency, Fact: FactMessage, Expr: total("price"),
		Description: "Sum of the price (value) of the sent messages."},

	// Engagement.
	{ID: "received", Name: "Messages received", Area: AreaEngagement, Kind: KindCount, Fact: FactEvent,
		Expr:        "count(*) FILTER (WHERE type = 'received')",
		Description: "Inbound messages from contacts (received events), at their own time."},
	{ID: "clicks", Name: "Messages clicked", Area: AreaEngagement, Kind: KindCount, Fact: FactMessage,
		Expr:        "count(*) FILTER (WHERE is_clicked AND is_delivered)",
		Description: "Messages with at least one credited click, at send time."},
	{ID: "click_rate", Name: "Click-through rate", Area: AreaEngagement, Kind: KindRate, Fact: FactMessage,
		Num: "count(*) FILTER (WHERE is_clicked AND is_delivered)", Den: delivered,
		Description: "Messages with at least one credited click / delivered."},
	{ID: "reply_rate", Name: "Reply rate", Area: AreaEngagement, Kind: KindRate, Fact: FactMessage,
		Num: "count(*) FILTER (WHERE is_replied AND is_delivered)", Den: delivered,
		Description: "Messages with at least one attributed reply (reply_to, or last touch within 24 h) / delivered."},
	{ID: "active_contacts", Name: "Active contacts", Area: AreaEngagement, Kind: KindCount, Fact: FactEvent,
		Expr:        "count(DISTINCT contact_id) FILTER (WHERE type = 'received')",
		Description: "Distinct contacts with a received event in the bucket."},
	{ID: "new_contacts", Name: "New contacts", Area: AreaEngagement, Kind: KindCount, Fact: FactEvent,
		Expr:        "count(DISTINCT contact_id) FILTER (WHERE type = 'received' AND first_recv_ts >= {bucket})",
		Description: "Active contacts whose first received event ever (whole store, no filters) is in the bucket."},
	{ID: "returning_contacts", Name: "Returning contacts", Area: AreaEngagement, Kind: KindCount, Fact: FactEvent,
		Expr:        "count(DISTINCT contact_id) FILTER (WHERE type = 'received' AND first_recv_ts < {bucket})",
		Description: "Active contacts that were active before the bucket."},

	// Conversion.
	{ID: "conversion_rate", Name: "Conversion rate", Area: AreaConversion, Kind: KindRate, Fact: FactMessage,
		Num: "count(*) FILTER (WHERE n_conv > 0 AND is_delivered)", Den: delivered,
		Description: "Delivered messages with at least one attributed conversion (reply_to, or last touch within 7 days) / delivered."},
	{ID: "conversions", Name: "Attributed conversions", Area: AreaConversion, Kind: KindCount, Fact: FactMessage,
		Expr:        "coalesce(sum(n_conv), 0)",
		Description: "Conversions credited to a message, at the message's send time."},
	{ID: "conversions_total", Name: "All conversions", Area: AreaConversion, Kind: KindCount, Fact: FactEvent,
		Expr:        "count(*) FILTER (WHERE type = 'converted')",
		Description: "All converted events at their own time, attributed or not."},
	{ID: "revenue", Name: "Attributed revenue", Area: AreaConversion, Kind: KindCurrency, Fact: FactMessage,
		Expr:        total("revenue"),
		Description: "Sum of the value of attributed conversions, at the message's send time."},
	{ID: "revenue_per_message", Name: "Revenue per delivered message", Area: AreaConversion, Kind: KindCurrency, Fact: FactMessage,
		Num: total("revenue"), Den: delivered,
		Description: "Attributed revenue / delivered messages."},

	// Churn and quality: events at their own time over deliveries at their own time.
	{ID: "blocked", Name: "Blocks", Area: AreaChurnQuality, Kind: KindCount, Fact: FactEvent,
		Expr: "count(*) FILTER (WHERE type = 'blocked')", Description: "blocked events at their own time."},
	{ID: "opted_out", Name: "Opt-outs", Area: AreaChurnQuality, Kind: KindCount, Fact: FactEvent,
		Expr: "count(*) FILTER (WHERE type = 'opted_out')", Description: "opted_out events at their own time."},
	{ID: "reported", Name: "Spam reports", Area: AreaChurnQuality, Kind: KindCount, Fact: FactEvent,
		Expr: "count(*) FILTER (WHERE type = 'reported')", Description: "reported events at their own time."},
	{ID: "deliveries", Name: "Deliveries (event time)", Area: AreaChurnQuality, Kind: KindCount, Fact: FactEvent,
		Expr:        "count(*) FILTER (WHERE type = '_delivery')",
		Description: "Messages delivered, each counted once at its earliest delivered/read time: the denominator of block, opt-out and report rates (use it as the minimum volume of alert rules)."},
	{ID: "block_rate", Name: "Block rate", Area: AreaChurnQuality, Kind: KindRate, Fact: FactEvent,
		Num: "count(*) FILTER (WHERE type = 'blocked')", Den: "count(*) FILTER (WHERE type = '_delivery')",
		Description: "blocked events / messages delivered, both counted in the bucket at their own time."},
	{ID: "opt_out_rate", Name: "Opt-out rate", Area: AreaChurnQuality, Kind: KindRate, Fact: FactEvent,
		Num: "count(*) FILTER (WHERE type = 'opted_out')", Den: "count(*) FILTER (WHERE type = '_delivery')",
		Description: "opted_out events / messages delivered, both counted in the bucket at their own time."},
	{ID: "report_rate", Name: "Spam report rate", Area: AreaChurnQuality, Kind: KindRate, Fact: FactEvent,
		Num: "count(*) FILTER (WHERE type = 'reported')", Den: "count(*) FILTER (WHERE type = '_delivery')",
		Description: "reported events / messages delivered, both counted in the bucket at their own time."},
	{ID: "churn_rate", Name: "Churn rate", Area: AreaChurnQuality, Kind: KindRate, Fact: FactEvent,
		Num:         "count(DISTINCT contact_id) FILTER (WHERE type IN ('blocked', 'opted_out'))",
		Den:         "count(DISTINCT contact_id) FILTER (WHERE type = '_delivery')",
		Description: "Distinct contacts that blocked or opted out / distinct contacts delivered to, in the bucket."},
	{ID: "quality_rating", Name: "Quality rating", Area: AreaChurnQuality, Kind: KindState, Fact: FactQuality,
		Description: "Latest quality rating per business number (0 GREEN, 1 YELLOW, 2 RED) at the end of each bucket; by template for template ratings."},

	// Service: conversations at their opening time.
	{ID: "conversations", Name: "Conversations", Area: AreaService, Kind: KindCount, Fact: FactConversation, Expr: "count(*)",
		Description: "Conversations opened (distinct conversation_id of conversation_opened)."},
	{ID: "first_response_time", Name: "First response time (avg)", Area: AreaService, Kind: KindDuration, Fact: FactConversation,
		Expr: mean("frt_s", ""), AgentColumn: "frt_agent",
		Description: "Time a customer waited for a human: first agent message minus the later of the opening and the last escalation before it. Conversations without an agent message are left out."},
	{ID: "first_response_time_p50", Name: "First response time (p50)", Area: AreaService, Kind: KindDuration, Fact: FactConversation,
		Expr: "quantile_cont(frt_s, 0.5)", AgentColumn: "frt_agent", Description: "Median first response time (interpolated)."},
	{ID: "first_response_time_p90", Name: "First response time (p90)", Area: AreaService, Kind: KindDuration, Fact: FactConversation,
		Expr: "quantile_cont(frt_s, 0.9)", AgentColumn: "frt_agent", Description: "90th percentile first response time (interpolated)."},
	{ID: "response_time", Name: "Response time", Area: AreaService, Kind: KindDuration, Fact: FactTurn,
		Expr:        mean("resp_s", ""),
		Description: "Average over customer turns: from the first inbound message of a turn to the next agent or bot message. Unanswered turns are left out (see unanswered_turns)."},
	{ID: "unanswered_turns", Name: "Unanswered turns", Area: AreaService, Kind: KindCount, Fact: FactTurn,
		Expr: "count(*) FILTER (WHERE resp_s IS NULL)", Description: "Customer turns with no agent or bot answer yet."},
	{ID: "resolution_time", Name: "Resolution time (avg)", Area: AreaService, Kind: KindDuration, Fact: FactConversation,
		Expr: mean("res_s", ""), AgentColumn: "res_agent", Description: "First resolved minus conversation_opened."},
	{ID: "resolution_time_p50", Name: "Resolution time (p50)", Area: AreaService, Kind: KindDuration, Fact: FactConversation,
		Expr: "quantile_cont(res_s, 0.5)", AgentColumn: "res_agent", Description: "Median resolution time (interpolated)."},
	{ID: "resolution_time_p90", Name: "Resolution time (p90)", Area: AreaService, Kind: KindDuration, Fact: FactConversation,
		Expr: "quantile_cont(res_s, 0.9)", AgentColumn: "res_agent", Description: "90th percentile resolution time (interpolated)."},
	{ID: "escalation_rate", Name: "Escalation rate", Area: AreaService, Kind: KindRate, Fact: FactConversation,
		Num: "count(*) FILTER (WHERE escalated)", Den: "count(*)", Description: "Conversations with at least one escalation / conversations."},
	{ID: "self_resolution_rate", Name: "Self-resolution rate", Area: AreaService, Kind: KindRate, Fact: FactConversation,
		Num: "count(*) FILTER (WHERE self_resolved)", Den: "count(*)", Description: "Conversations resolved by the bot and never escalated / conversations."},
	{ID: "abandonment_rate", Name: "Abandonment rate", Area: AreaService, Kind: KindRate, Fact: FactConversation,
		Num: "count(*) FILTER (WHERE abandoned)", Den: "count(*)", Description: "Conversations with an abandoned event / conversations."},
	{ID: "abandoned", Name: "Abandoned", Area: AreaService, Kind: KindCount, Fact: FactEvent,
		Expr: "count(*) FILTER (WHERE type = 'abandoned')", Description: "abandoned events at their own time; group by step to see where customers drop off."},
	{ID: "csat_avg", Name: "CSAT (avg)", Area: AreaService, Kind: KindScore, Fact: FactEvent,
		Expr: mean("value", "type = 'csat'"), Description: "Mean csat score (1-5)."},
	{ID: "csat_satisfied", Name: "CSAT satisfied", Area: AreaService, Kind: KindRate, Fact: FactEvent,
		Num: "count(*) FILTER (WHERE type = 'csat' AND value >= 4)", Den: "count(*) FILTER (WHERE type = 'csat')",
		Description: "Share of csat answers of 4 or 5."},
	{ID: "nps", Name: "NPS", Area: AreaService, Kind: KindScore, Fact: FactEvent,
		Expr:        "(count(*) FILTER (WHERE type = 'nps' AND value >= 9) - count(*) FILTER (WHERE type = 'nps' AND value <= 6)) * 100.0 / NULLIF(count(*) FILTER (WHERE type = 'nps'), 0)",
		Description: "Net promoter score: (share of nps answers >= 9 - share <= 6) x 100."},
}

// Dimension is a column to group and filter by.
type Dimension struct {
	ID          string
	Name        string
	Description string
	Derived     bool // computed from the fact's time in the query's time zone
}

// Dimensions lists every dimension (SPEC section 2).
var Dimensions = []Dimension{
	{ID: "campaign", Name: "Campaign", Description: "Marketing campaign or broadcast (from the message for outcomes)."},
	{ID: "template", Name: "Template", Description: "WhatsApp message template name."},
	{ID: "category", Name: "Category", Description: "Meta pricing category (marketing, utility, authentication, service, ...)."},
	{ID: "variant", Name: "Variant", Description: "A/B test arm."},
	{ID: "segment", Name: "Segment", Description: "Audience segment."},
	{ID: "country", Name: "Country", Description: "ISO 3166-1 alpha-2 country of the contact."},
	{ID: "business_number", Name: "Business number", Description: "Business phone number id (the channel)."},
	{ID: "agent_id", Name: "Agent", Description: "Human agent (response times: first agent to answer; resolution: the resolving agent)."},
	{ID: "sender", Name: "Sender", Description: "Who authored the message or action: campaign, bot, agent, customer, system."},
	{ID: "message_type", Name: "Message type", Description: "text, template, image, interactive, button, ..."},
	{ID: "pricing_type", Name: "Pricing type", Description: "Meta pricing.type: regular, free_customer_service, free_entry_point."},
	{ID: "currency", Name: "Currency", Description: "ISO 4217 currency of money values; split by it when there are several."},
	{ID: "error_code", Name: "Error code", Description: "WhatsApp error code of a failed message (event-only)."},
	{ID: "step", Name: "Flow step", Description: "Flow step where a customer dropped off (abandoned events)."},
	{ID: "hour_of_day", Name: "Hour of day", Description: "0-23 in the query's time zone (send time for outcomes, event time otherwise).", Derived: true},
	{ID: "day_of_week", Name: "Day of week", Description: "1-Mon ... 7-Sun in the query's time zone.", Derived: true},
}

var (
	metricByID    = map[string]*Metric{}
	dimensionByID = map[string]*Dimension{}
)

func init() {
	for i := range Metrics {
		metricByID[Metrics[i].ID] = &Metrics[i]
	}
	for i := range Dimensions {
		dimensionByID[Dimensions[i].ID] = &Dimensions[i]
	}
}

// LookupMetric finds a metric by id.
func LookupMetric(id string) (*Metric, bool) { m, ok := metricByID[id]; return m, ok }

// LookupDimension finds a dimension by id.
func LookupDimension(id string) (*Dimension, bool) { d, ok := dimensionByID[id]; return d, ok }

// MetricIDs lists every metric id, sorted.
func MetricIDs() []string {
	ids := make([]string, 0, len(Metrics))
	for _, m := range Metrics {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return ids
}

// DimensionIDs lists every dimension id in catalog order.
func DimensionIDs() []string {
	ids := make([]string, 0, len(Dimensions))
	for _, d := range Dimensions {
		ids = append(ids, d.ID)
	}
	return ids
}
