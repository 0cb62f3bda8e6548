package demo

// The static world of the demo: business numbers, countries, segments, campaigns, agents.

// Business phone-number ids (the channel). The first one is the shop's marketing number
// (the one that gets the block-rate spike), the second the customer-care line, the third
// the notifications number (order updates and one-time passwords).
const (
	numShop    = "106540352242922"
	numCare    = "108223519471603"
	numNotify  = "112907716304581"
	currency   = "EUR"
	bizUTCOffs = 1 // the business's local time (Europe/Rome, DST ignored) for daily shapes
)

var numbers = [...]string{numShop, numCare, numNotify}

type country struct {
	code     string
	weight   float64
	utcOff   float64 // hours, for the contact's local time (read delays at night)
	undeliv  float64 // share of messages failing with 131026
	offline  float64 // share of deliveries that wait for the phone to come online
	readMul  float64
	priceMkt float64 // EUR per message, marketing (and marketing_lite)
	priceUtl float64 // utility
	priceAut float64 // authentication
	priceInt float64 // authentication_international (0: not applicable)
}

// Prices are rounded versions of Meta's per-message rate card, in EUR.
var countries = [...]country{
	{"IT", 0.27, 1, 0.012, 0.06, 1.00, 0.0691, 0.0300, 0.0300, 0},
	{"DE", 0.15, 1, 0.008, 0.05, 0.92, 0.1365, 0.0456, 0.0636, 0},
	{"ES", 0.13, 1, 0.015, 0.07, 1.03, 0.0615, 0.0200, 0.0200, 0},
	{"FR", 0.11, 1, 0.012, 0.06, 0.95, 0.1432, 0.0300, 0.0357, 0},
	{"GB", 0.08, 0, 0.010, 0.05, 0.90, 0.0529, 0.0220, 0.0358, 0},
	{"NL", 0.03, 1, 0.008, 0.05, 0.93, 0.1597, 0.0500, 0.0500, 0},
	{"BR", 0.09, -3, 0.040, 0.14, 1.12, 0.0625, 0.0080, 0.0315, 0.0315},
	{"IN", 0.08, 5.5, 0.065, 0.18, 1.08, 0.0107, 0.0014, 0.0014, 0.0280},
	{"MX", 0.06, -6, 0.035, 0.12, 1.10, 0.0436, 0.0100, 0.0240, 0.0240},
}

// Segments. A contact's segment is fixed by its index modulo 20 (8 new leads, 6 repeat
// customers, 4 inactive, 2 VIPs out of 20), so a campaign can draw an audience of one
// segment in O(1).
const (
	segNew = iota
	segRepeat
	segInactive
	segVIP
	nSegs
)

var segNames = [nSegs]string{"new_lead", "repeat_customer", "inactive", "vip"}
var segOffset = [nSegs]int{0, 8, 14, 18}
var segWidth = [nSegs]int{8, 6, 4, 2}

// Behaviour multipliers per segment.
var segRead = [nSegs]float64{0.95, 1.08, 0.62, 1.20}
var segBlock = [nSegs]float64{1.3, 0.7, 2.8, 0.3}
var segConv = [nSegs]float64{0.7, 1.2, 0.5, 2.0}
var segReply = [nSegs]float64{0.9, 1.1, 0.6, 1.6}

const (
	catMarketing = "marketing"
	catLite      = "marketing_lite"
	catUtility   = "utility"
	catAuth      = "authentication"
	catAuthIntl  = "authentication_international"
	catService   = "service"
)

type campaign struct {
	name     string
	template string
	category string
	number   string
	sender   string // campaign (broadcasts) or system (transactional)
	ab       bool   // A/B test: control vs variant_b (variant_b reads and clicks better)
	segs     []int  // audience segments
	button   bool   // the template has a URL / quick-reply button (clicks)
	read     float64
	click    float64 // P(click | read)
	reply    float64 // P(reply | read)
	conv     float64 // P(conversion | click); P(conversion | read, no click) is a tenth
	block    float64 // P(block | delivered), before the segment multiplier
	optout   float64
	report   float64
	limit    float64 // P(131049 per-user marketing limit)
	spike    bool
}

var (
	allSegs    = []int{segNew, segRepeat, segInactive, segVIP}
	activeSegs = []int{segNew, segRepeat, segVIP}
)

// Campaign indexes.
const (
	cSpring = iota
	cWinback
	cVIP
	cBackInStock
	cSummer
	cFlash
	cCart
	cWelcome
	cNewsletter
	cOrders
	cOTP
	nCampaigns
)

var campaigns = [nCampaigns]campaign{
	cSpring:      {name: "spring_sale_v2", template: "spring_sale_v2", category: catMarketing, number: numShop, sender: "campaign", ab: true, segs: []int{segNew, segRepeat}, button: true, read: 0.52, click: 0.15, reply: 0.05, conv: 0.20, block: 0.01, optout: 0.004, report: 0.0012, limit: 0.025},
	cWinback:     {name: "winback_inactive", template: "winback_20off", category: catMarketing, number: numShop, sender: "campaign", segs: []int{segInactive}, button: true, read: 0.55, click: 0.10, reply: 0.04, conv: 0.15, block: 0.013, optout: 0.006, report: 0.0020, limit: 0.035},
	cVIP:         {name: "vip_early_access", template: "vip_early_access", category: catMarketing, number: numShop, sender: "campaign", segs: []int{segVIP}, button: true, read: 0.60, click: 0.22, reply: 0.08, conv: 0.30, block: 0.006, optout: 0.002, report: 0.0005, limit: 0.010},
	cBackInStock: {name: "back_in_stock", template: "back_in_stock_alert", category: catLite, number: numShop, sender: "campaign", segs: []int{segRepeat, segVIP}, button: true, read: 0.50, click: 0.16, reply: 0.03, conv: 0.22, block: 0.008, optout: 0.003, report: 0.0008, limit: 0.015},
	cSummer:      {name: "summer_preview", template: "summer_preview_carousel", category: catMarketing, number: numShop, sender: "campaign", ab: true, segs: activeSegs, button: true, read: 0.50, click: 0.14, reply: 0.05, conv: 0.18, block: 0.01, optout: 0.004, report: 0.0012, limit: 0.025},
	cFlash:       {name: "flash_sale_blast", template: "flash_sale_48h", category: catMarketing, number: numShop, sender: "campaign", segs: allSegs, button: true, read: 0.42, click: 0.08, reply: 0.05, conv: 0.12, block: 0.095, optout: 0.05, report: 0.022, limit: 0.07, spike: true},
	cCart:        {name: "cart_reminder", template: "cart_reminder_v3", category: catMarketing, number: numShop, sender: "campaign", ab: true, segs: activeSegs, button: true, read: 0.62, click: 0.22, reply: 0.04, conv: 0.30, block: 0.007, optout: 0.003, report: 0.0008, limit: 0.010},
	cWelcome:     {name: "welcome_series", template: "welcome_offer_10", category: catMarketing, number: numShop, sender: "campaign", segs: []int{segNew}, button: true, read: 0.70, click: 0.18, reply: 0.06, conv: 0.20, block: 0.009, optout: 0.004, report: 0.0008, limit: 0.0},
	cNewsletter:  {name: "weekly_newsletter", template: "weekly_digest", category: catLite, number: numShop, sender: "campaign", segs: []int{segNew, segRepeat, segVIP}, button: true, read: 0.45, click: 0.08, reply: 0.02, conv: 0.15, block: 0.008, optout: 0.004, report: 0.0008, limit: 0.015},
	cOrders:      {name: "order_notifications", template: "order_update", category: catUtility, number: numNotify, sender: "system", segs: []int{segNew, segRepeat, segVIP}, button: true, read: 0.78, click: 0.25, reply: 0.04, conv: 0.02, block: 0.0018, optout: 0.0006, report: 0.0002},
	cOTP:         {name: "login_security", template: "otp_login", category: catAuth, number: numNotify, sender: "system", segs: activeSegs, read: 0.86, reply: 0.002, block: 0.0006, optout: 0.0002, report: 0.0001},
}

// A blast is one send of a broadcast campaign, End-anchored: daysAgo counts back from the
// UTC midnight of End's day.
type blastDef struct {
	camp    int
	daysAgo int
	utcHour int
	hours   int
	size    float64 // in units of an average day's base volume D
}

const spikeDaysAgo = 10

var blastDefs = [...]blastDef{
	{cBackInStock, 84, 8, 3, 0.7},
	{cWinback, 72, 9, 2, 0.8},
	{cVIP, 60, 16, 2, 0.35},
	{cSpring, 50, 8, 4, 1.4},
	{cSpring, 47, 17, 3, 1.2},
	{cSpring, 44, 8, 3, 1.0},
	{cBackInStock, 38, 8, 3, 0.7},
	{cWinback, 30, 9, 2, 0.8},
	{cSummer, 24, 8, 3, 1.1},
	{cVIP, 18, 16, 2, 0.35},
	{cFlash, spikeDaysAgo, 9, 3, 1.7},
	{cBackInStock, 5, 8, 3, 0.7},
}

// Continuous streams (entities per average day, in units of D), shaped by the diurnal and
// weekly curve and the growth trend.
const (
	sOrders = iota
	sOTP
	sCart
	sOptIn
	sConvCustomer
	sConvAgent
	sConvBot
	sOrganic
	nStreams
	sNewsletter = 90
	sBlast      = 100
)

var streamShare = [nStreams]float64{
	sOrders:       0.22,
	sOTP:          0.14,
	sCart:         0.06,
	sOptIn:        0.03,
	sConvCustomer: 0.045,
	sConvAgent:    0.008,
	sConvBot:      0.008,
	sOrganic:      0.02,
}

// Events per entity, measured on the default configuration (see TestCalibration); they
// turn Config.Events into the base volume D.
var streamEPM = [nStreams]float64{
	sOrders:       2.99,
	sOTP:          2.80,
	sCart:         2.95,
	sOptIn:        3.60,
	sConvCustomer: 12.6,
	sConvAgent:    8.5,
	sConvBot:      12.1,
	sOrganic:      1.0,
}

const blastEPM = 2.62
const newsletterSize = 0.55 // D per Thursday send

type agent struct {
	id   string
	frt  int64 // median first response in the day, seconds
	resp int64 // median later response, seconds
	csat float64
	w    float64
}

var agents = [...]agent{
	{"agent_giulia", 70, 45, 4.6, 1.0},
	{"agent_marco", 150, 80, 4.2, 1.0},
	{"agent_sofia", 100, 60, 4.4, 0.8},
	{"agent_luca", 260, 140, 3.5, 0.8},
	{"agent_elena", 120, 70, 4.0, 0.9},
	{"agent_tom", 200, 90, 3.9, 0.5},
}

// Flows of the bot and the steps where customers drop out of them.
var flowSteps = [...][]string{
	{"choose_product", "address", "payment"}, // purchase
	{"identity_check", "choose_product"},     // order status / returns
	{"identity_check"},                       // account
}

// Business-local diurnal curve (0-23 h) and weekday factor (Sunday first).
var diurnal = [24]float64{0.15, 0.08, 0.05, 0.04, 0.04, 0.07, 0.15, 0.35, 0.65, 0.90, 1.00, 1.05,
	1.10, 1.00, 0.95, 0.95, 1.00, 1.05, 1.10, 1.10, 1.00, 0.85, 0.60, 0.30}
var weekly = [7]float64{0.6, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75}

// The A/B arms: variant_b's copy is read and clicked more (absolute lifts of P(read |
// delivered) and P(click | read)).
const (
	abReadLift  = 0.04
	abClickLift = 0.06
)
