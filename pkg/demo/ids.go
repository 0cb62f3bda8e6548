package demo

const hexDigits = "0123456789abcdef"
const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// wamid returns a WhatsApp-style message id: a fixed prefix like Meta's ("HBgLMzkz" is the
// base64 of a protobuf header) followed by 24 random base64 characters. No phone number is
// encoded in it.
func (g *gen) wamid() string {
	var buf [6 + 8 + 24 + 4]byte
	copy(buf[:], "wamid.HBgLMzkz")
	i := 14
	for k := 0; k < 3; k++ {
		x := g.r.u64()
		for j := 0; j < 8; j++ {
			buf[i] = b64[x&63]
			x >>= 6
			i++
		}
	}
	copy(buf[i:], "FQIA")
	return string(buf[:])
}

// evtID returns an event id "evt_" + 20 hex digits for events that are not about one
// message (clicks, conversions, consent, conversation events, surveys, quality).
func (g *gen) evtID() string {
	var buf [4 + 20]byte
	copy(buf[:], "evt_")
	x, y := g.r.u64(), g.r.u64()
	for i := 0; i < 16; i++ {
		buf[4+i] = hexDigits[x&15]
		x >>= 4
	}
	for i := 0; i < 4; i++ {
		buf[20+i] = hexDigits[y&15]
		y >>= 4
	}
	return string(buf[:])
}

func (g *gen) convID() string {
	var buf [5 + 16]byte
	copy(buf[:], "conv_")
	x := g.r.u64()
	for i := 0; i < 16; i++ {
		buf[5+i] = hexDigits[x&15]
		x >>= 4
	}
	return string(buf[:])
}

// contact is a pseudonymous customer: a stable id, country and segment per index.
type contact struct {
	idx     int
	id      string
	country *country
	seg     int
}

func (g *gen) contactOf(idx int) contact {
	h := mix(g.seed ^ 0xc047ac7 ^ uint64(idx)*0x9e3779b97f4a7c15)
	var buf [2 + 16]byte
	buf[0], buf[1] = 'c', '_'
	x := h
	for i := 0; i < 16; i++ {
		buf[2+i] = hexDigits[x&15]
		x >>= 4
	}
	u := float64(mix(h)>>11) * 0x1p-53
	ci := len(countries) - 1
	for i := range countries {
		u -= countries[i].weight
		if u < 0 {
			ci = i
			break
		}
	}
	seg := segVIP
	m := idx % 20
	for s := nSegs - 1; s >= 0; s-- {
		if m >= segOffset[s] {
			seg = s
			break
		}
	}
	return contact{idx: idx, id: string(buf[:]), country: &countries[ci], seg: seg}
}

// population is the number of known contacts at time t: it grows with the business.
func (g *gen) population(t int64) int {
	f := float64(t-g.startUS) / float64(g.spanUS)
	n := int(g.contacts * (0.55 + 0.45*f))
	if n < 40 {
		n = 40
	}
	return n
}

// pickContact draws a contact known at time t from one of the segments (nil: any).
func (g *gen) pickContact(t int64, segs []int) contact {
	n := g.population(t)
	if segs == nil {
		return g.contactOf(g.r.n(n))
	}
	tot := 0
	for _, s := range segs {
		tot += segWidth[s]
	}
	k := g.r.n(tot)
	base := g.r.n(n/20) * 20
	for _, s := range segs {
		if k < segWidth[s] {
			return g.contactOf(base + segOffset[s] + k)
		}
		k -= segWidth[s]
	}
	return g.contactOf(base)
}
