package demo

import (
	"math"
	"slices"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// Config sets the size, length, seed and end of the generated history.
type Config struct {
	Events int       // approximate total number of events to emit (±10 %); default 400_000 when 0
	Days   int       // history length ending at End; default 90 when 0
	Seed   int64     // same Config => byte-identical event sequence
	End    time.Time // nothing after End is emitted; zero means time.Now()
}

const (
	usSec  = int64(1_000_000)
	usMin  = 60 * usSec
	usHour = 60 * usMin
	usDay  = 24 * usHour

	ringSize = 256 // hours of pending (not yet arrived) events: follow-ups never go further

	lateShare = 0.02  // events that arrive out of order (minutes or hours late)
	dupShare  = 0.005 // events delivered twice (same event_id)
	lostSent  = 0.001 // broadcast messages whose sent event never reaches the store
)

type bucket struct {
	evs  []events.Event
	arr  []int64 // arrival time (µs) of evs[i]
	keys []uint64
}

type blast struct {
	def   blastDef
	idx   int // index in blastDefs: its stream id is sBlast+idx
	start int64
	end   int64
	size  float64
}

type qualityEvent struct {
	ts       int64
	number   string
	template string
	quality  string
}

type gen struct {
	seed     uint64
	emit     func(*events.Event) error
	startUS  int64 // first microsecond of the history (UTC midnight, Days days before End's day)
	endUS    int64 // End: nothing later is emitted
	spanUS   int64 // startUS to the end of End's UTC day
	endHour  int64
	cur      int64   // the unix hour being generated
	d        float64 // base volume: entities per average day per unit of share
	wMean    float64 // mean hourly weight over the window
	gMean    float64 // mean growth factor over the window
	contacts float64 // contact population at the end of the window

	blasts  []blast
	quality []qualityEvent

	ring   [ringSize]bucket
	r      rng
	floats []float64
	codes  []int32

	stats     *[256]int // events per stream (calibration only)
	curStream int
}

// Generate streams a deterministic, realistic WhatsApp Business history to emit, roughly
// in arrival order (see the package documentation). It stops at emit's first error and
// returns it. The *events.Event passed to emit is only valid during the call: copy the
// struct to keep it.
func Generate(cfg Config, emit func(*events.Event) error) error {
	g := newGen(cfg, emit)
	return g.run()
}

func newGen(cfg Config, emit func(*events.Event) error) *gen {
	if cfg.Events <= 0 {
		cfg.Events = 400_000
	}
	if cfg.Days <= 0 {
		cfg.Days = 90
	}
	if cfg.End.IsZero() {
		cfg.End = time.Now()
	}
	g := &gen{seed: mix(uint64(cfg.Seed) ^ 0x5eed_b1e7_1c45), emit: emit}
	g.endUS = cfg.End.UnixMicro()
	endDay0 := floorDiv(g.endUS, usDay) * usDay
	g.startUS = endDay0 - int64(cfg.Days)*usDay
	g.spanUS = int64(cfg.Days+1) * usDay
	g.endHour = floorDiv(g.endUS, usHour)

	// Normalisation of the hourly shape over the whole window (anchored to End's day).
	nHours := int(g.spanUS / usHour)
	var wSum, gSum float64
	for i := 0; i < nHours; i++ {
		t := g.startUS + int64(i)*usHour
		wSum += g.weight(t)
		gSum += g.growth(t)
	}
	g.wMean = wSum / float64(nHours)
	g.gMean = gSum / float64(nHours)

	// Blasts and newsletters inside the window, in units of D.
	var blastUnits float64
	for i, b := range blastDefs {
		s := endDay0 - int64(b.daysAgo)*usDay + int64(b.utcHour)*usHour
		if s < g.startUS {
			continue
		}
		size := b.size * g.growth(s) / g.gMean
		g.blasts = append(g.blasts, blast{def: b, idx: i, start: s, end: s + int64(b.hours)*usHour, size: size})
		blastUnits += size
	}
	for day := g.startUS; day < g.startUS+g.spanUS; day += usDay {
		if weekday(day) == 4 { // Thursday, 08:00 UTC, absolute weekly schedule
			s := day + 8*usHour
			size := newsletterSize * g.growth(s) / g.gMean
			g.blasts = append(g.blasts, blast{def: blastDef{cNewsletter, 0, 8, 2, newsletterSize}, idx: -1, start: s, end: s + 2*usHour, size: size})
			blastUnits += size
		}
	}
	var perD float64 = blastUnits * blastEPM
	for s := 0; s < nStreams; s++ {
		perD += streamShare[s] * streamEPM[s] * float64(cfg.Days+1)
	}
	g.d = float64(cfg.Events) / perD
	g.contacts = math.Max(400, g.d*6)

	g.scheduleQuality(endDay0)
	return g
}

func (g *gen) scheduleQuality(endDay0 int64) {
	q := func(ts int64, number, template, quality string) {
		if ts >= g.startUS {
			g.quality = append(g.quality, qualityEvent{ts, number, template, quality})
		}
	}
	// Every number starts GREEN at the beginning of the window.
	for i, n := range numbers {
		q(g.startUS+int64(i+1)*usMin, n, "", "GREEN")
	}
	// The templates whose rating changes later start GREEN too.
	q(g.startUS+4*usMin, numShop, "flash_sale_48h", "GREEN")
	q(g.startUS+5*usMin, numShop, "winback_20off", "GREEN")
	// A care-line wobble mid-history.
	cw := endDay0 - 55*usDay
	q(cw+14*usHour, numCare, "", "YELLOW")
	q(cw+62*usHour, numCare, "", "GREEN")
	// The spike: the flash-sale template, then the shop's number, degrade.
	sp := endDay0 - spikeDaysAgo*usDay
	q(sp+15*usHour, numShop, "flash_sale_48h", "YELLOW")
	q(sp+22*usHour, numShop, "", "YELLOW")
	q(sp+34*usHour, numShop, "flash_sale_48h", "RED")
	q(sp+38*usHour, numShop, "", "RED")
	q(sp+43*usHour, numShop, "", "YELLOW")
	q(sp+5*usDay+9*usHour, numShop, "", "GREEN")
	// The second win-back blast wears its template down for a week.
	wb := endDay0 - 30*usDay
	q(wb+30*usHour, numShop, "winback_20off", "YELLOW")
	q(wb+8*usDay+10*usHour, numShop, "winback_20off", "GREEN")
	slices.SortFunc(g.quality, func(a, b qualityEvent) int { return int(a.ts - b.ts) })
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// weekday of a UTC instant in business local time, Sunday = 0.
func weekday(t int64) int {
	return int((floorDiv(t+bizUTCOffs*usHour, usDay)%7 + 11) % 7)
}

func localHour(t int64, off float64) int {
	h := floorDiv(t+int64(off*float64(usHour)), usHour) % 24
	if h < 0 {
		h += 24
	}
	return int(h)
}

// growth is the traffic trend: ×1.8 from the start to the end of the window.
func (g *gen) growth(t int64) float64 {
	return math.Exp(math.Ln2 * 0.85 * float64(t-g.startUS) / float64(g.spanUS))
}

// weight of the hour starting at t: diurnal × weekly × growth.
func (g *gen) weight(t int64) float64 {
	return diurnal[localHour(t, bizUTCOffs)] * weekly[weekday(t)] * g.growth(t)
}

func (g *gen) run() error {
	startHour := g.startUS / usHour
	for h := startHour; h <= g.endHour; h++ {
		g.cur = h
		g.hour(h)
		if err := g.flush(h); err != nil {
			return err
		}
	}
	for h := g.endHour + 1; h < g.endHour+ringSize; h++ {
		if err := g.flush(h); err != nil {
			return err
		}
	}
	return nil
}

// hour generates every entity that starts in the unix hour h.
func (g *gen) hour(h int64) {
	t0 := h * usHour
	for _, q := range g.quality {
		if q.ts >= t0 && q.ts < t0+usHour {
			g.r = rng{seedOf(g.seed, h, 7, int(q.ts%usHour))}
			g.curStream = 255
			e := events.Event{EventID: g.evtID(), Type: events.TypeQualityChanged, BusinessNumber: q.number,
				Template: q.template, Quality: q.quality, Sender: "system"}
			g.put(&e, q.ts)
		}
	}
	w := g.weight(t0) / g.wMean
	for s := 0; s < nStreams; s++ {
		lambda := streamShare[s] * g.d / 24 * w
		g.r = rng{seedOf(g.seed, h, s, -1)}
		n := g.r.poisson(lambda)
		for i := 0; i < n; i++ {
			g.r = rng{seedOf(g.seed, h, s, i)}
			ts := t0 + g.r.between(0, usHour)
			g.curStream = s
			g.stream(s, ts)
		}
	}
	for bi := range g.blasts {
		b := &g.blasts[bi]
		if b.end <= t0 || b.start >= t0+usHour {
			continue
		}
		// A blast sends most in its first hour, then tails off.
		k := int((t0 - b.start) / usHour)
		frac := 1.0 / float64(b.def.hours)
		if b.def.hours > 1 {
			frac = 1.4 / float64(b.def.hours)
			if k > 0 {
				frac = (1 - 1.4/float64(b.def.hours)) / float64(b.def.hours-1)
			}
		}
		stream := sBlast + b.idx
		if b.idx < 0 {
			stream = sNewsletter
		}
		g.r = rng{seedOf(g.seed, h, stream, -1)}
		n := g.r.poisson(b.size * g.d * frac)
		for i := 0; i < n; i++ {
			g.r = rng{seedOf(g.seed, h, stream, i)}
			ts := t0 + g.r.between(0, usHour)
			g.curStream = 200
			g.broadcast(b.def.camp, ts)
		}
	}
}

// put files an event at time ts under its arrival time: usually ts, sometimes minutes or
// hours later (out of order), sometimes twice (a duplicate delivery).
//
// It draws the same random numbers whether or not the event is kept, so an entity's other
// events do not depend on End.
func (g *gen) put(e *events.Event, ts int64) {
	// Two draws: 32 bits decide lateness and duplication, 32 bits give the delay.
	x, y := g.r.u64(), g.r.u64()
	late, dup := float64(x>>32)*0x1p-32, float64(x&0xffffffff)*0x1p-32
	d := float64(y>>32) * 0x1p-32
	arr := ts
	if late < lateShare*0.7 {
		arr += usMin + int64(d*float64(14*usMin))
	} else if late < lateShare {
		arr += usHour + int64(d*float64(5*usHour))
	}
	dupDelay := int64(float64(y&0xffffffff) * 0x1p-32 * float64(10*usMin))
	if ts > g.endUS {
		return
	}
	e.TS = time.UnixMicro(ts).UTC()
	g.insert(e, arr)
	if dup < dupShare {
		g.insert(e, arr+dupDelay)
	}
}

func (g *gen) insert(e *events.Event, arr int64) {
	h := floorDiv(arr, usHour)
	if h-g.cur >= ringSize {
		h = g.cur + ringSize - 1
		arr = h * usHour
	}
	if g.stats != nil {
		g.stats[g.curStream]++
	}
	b := &g.ring[h&(ringSize-1)]
	b.evs = append(b.evs, *e)
	b.arr = append(b.arr, arr)
}

// flush emits the events arriving in hour h, in arrival order.
func (g *gen) flush(h int64) error {
	b := &g.ring[h&(ringSize-1)]
	if len(b.evs) == 0 {
		return nil
	}
	base := h * usHour
	keys := b.keys[:0]
	for i, a := range b.arr {
		keys = append(keys, uint64(a-base)<<32|uint64(i))
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := g.emit(&b.evs[uint32(k)]); err != nil {
			return err
		}
	}
	if cap(b.evs) > 1<<11 { // let big hours go back to the GC
		b.evs, b.arr, b.keys = nil, nil, nil
	} else {
		clear(b.evs)
		b.evs, b.arr, b.keys = b.evs[:0], b.arr[:0], keys[:0]
	}
	return nil
}

// fl and code return pointers into append-only chunks: no allocation per event, and the
// pointed values never change after the event is emitted.
func (g *gen) fl(v float64) *float64 {
	if len(g.floats) == cap(g.floats) {
		g.floats = make([]float64, 0, 4096)
	}
	g.floats = append(g.floats, v)
	return &g.floats[len(g.floats)-1]
}

func (g *gen) code(c int32) *int32 {
	if len(g.codes) == cap(g.codes) {
		g.codes = make([]int32, 0, 1024)
	}
	g.codes = append(g.codes, c)
	return &g.codes[len(g.codes)-1]
}
