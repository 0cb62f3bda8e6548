package demo

import (
	"math"
	"math/bits"
)

// rng is wyrand: tiny, fast and good enough for synthetic traffic. Every entity (a message,
// a conversation, an opt-in) gets its own rng seeded from (Seed, unix hour, stream, index),
// so an entity's story does not depend on how many entities came before it.
type rng struct{ s uint64 }

func (r *rng) u64() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// f returns a float in [0, 1).
func (r *rng) f() float64 { return float64(r.u64()>>11) * 0x1p-53 }

// n returns an int in [0, k), k > 0 and < 2^32.
func (r *rng) n(k int) int {
	if k <= 1 {
		return 0
	}
	return int(((r.u64() >> 32) * uint64(k)) >> 32)
}

// between returns an int64 in [lo, hi).
func (r *rng) between(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	return lo + int64(r.f()*float64(hi-lo))
}

func (r *rng) chance(p float64) bool { return r.f() < p }

// norm is a standard normal draw (Box-Muller, one of the pair).
func (r *rng) norm() float64 {
	u := r.f()
	if u < 1e-300 {
		u = 1e-300
	}
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.f())
}

// logn draws a log-normal duration (microseconds) with the given median and sigma.
func (r *rng) logn(median int64, sigma float64) int64 {
	return int64(float64(median) * math.Exp(sigma*r.norm()))
}

// poisson draws a Poisson count with mean lambda.
func (r *rng) poisson(lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda < 40 {
		l := math.Exp(-lambda)
		k := 0
		p := r.f()
		for p > l {
			k++
			p *= r.f()
		}
		return k
	}
	v := math.Round(lambda + math.Sqrt(lambda)*r.norm())
	if v < 0 {
		return 0
	}
	return int(v)
}

// mix is splitmix64's finaliser: a well-mixed hash of one word.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// seedOf derives an entity seed from the generator seed and three coordinates.
func seedOf(seed uint64, hour int64, stream, index int) uint64 {
	return mix(mix(mix(seed^uint64(hour)*0x9e3779b97f4a7c15)^uint64(stream)*0xd1b54a32d192ed03) ^ uint64(index))
}
