// Package fibtest builds synthetic FIB contents for tests and benchmarks of
// packages that consult fib tables.
package fibtest

import (
	"math/rand/v2"

	"github.com/vecnet/vecnet/pkg/dataplane/fib"
)

// Route4 is one IPv4 prefix with its value.
type Route4 struct {
	Addr  uint32
	Len   int
	Value uint32
}

// Route6 is one IPv6 prefix (big-endian halves) with its value.
type Route6 struct {
	Hi, Lo uint64
	Len    int
	Value  uint32
}

func newRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x5eed_f1b))
}

// ip4Len draws a prefix length with roughly the mix of an internet table:
// mostly /24, a good share of /16-/23, a few /8-/15, /25-/31 and /32.
func ip4Len(r *rand.Rand) int {
	switch p := r.IntN(1000); {
	case p < 580:
		return 24
	case p < 680:
		return 23
	case p < 780:
		return 22
	case p < 840:
		return 21
	case p < 880:
		return 20
	case p < 940:
		return 16 + r.IntN(4)
	case p < 960:
		return 8 + r.IntN(8)
	case p < 975:
		return 25 + r.IntN(7)
	default:
		return 32
	}
}

// RandomIP4Routes returns n distinct IPv4 prefixes with an internet-like
// length mix, spread over unicast space, with values 1..n in order.
func RandomIP4Routes(n int, seed int64) []Route4 {
	r := newRand(seed)
	seen := make(map[uint64]struct{}, n)
	rs := make([]Route4, 0, n)
	for len(rs) < n {
		l := ip4Len(r)
		a := (1 + r.Uint32N(223)) << 24 // 1.0.0.0 - 223.255.255.255
		a |= r.Uint32() & 0x00ffffff
		a &= ^uint32(0) << (32 - l)
		k := uint64(a)<<8 | uint64(l)
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		rs = append(rs, Route4{a, l, uint32(len(rs) + 1)})
	}
	return rs
}

// LoadIP4 inserts routes into t in one transaction.
func LoadIP4(t *fib.IP4, routes []Route4) error {
	return t.Update(func(tx *fib.IP4Txn) error {
		for _, rt := range routes {
			if err := tx.Set(rt.Addr, rt.Len, rt.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// RandomIP4Table returns a table loaded with RandomIP4Routes(n, seed).
func RandomIP4Table(n int, seed int64) (*fib.IP4, []Route4) {
	rs := RandomIP4Routes(n, seed)
	t := fib.NewIP4()
	if err := LoadIP4(t, rs); err != nil {
		panic(err)
	}
	return t, rs
}

// IP4LookupAddrs returns n addresses for lookup benchmarks: nine in ten
// inside a random route (random host bits), the rest uniformly random.
func IP4LookupAddrs(routes []Route4, n int, seed int64) []uint32 {
	r := newRand(seed)
	out := make([]uint32, n)
	for i := range out {
		if len(routes) == 0 || r.IntN(10) == 0 {
			out[i] = r.Uint32()
			continue
		}
		rt := routes[r.IntN(len(routes))]
		out[i] = rt.Addr | r.Uint32()&^(^uint32(0)<<(32-rt.Len))
	}
	return out
}

// ip6Len draws a prefix length with roughly the mix of an IPv6 internet
// table plus some host routes.
func ip6Len(r *rand.Rand) int {
	switch p := r.IntN(1000); {
	case p < 500:
		return 48
	case p < 650:
		return 32
	case p < 800:
		return 33 + r.IntN(15) // /33-/47
	case p < 880:
		return 29 + r.IntN(3)
	case p < 930:
		return 56
	case p < 960:
		return 64
	case p < 980:
		return 49 + r.IntN(15)
	default:
		return 128
	}
}

func mask6(l int) (uint64, uint64) {
	if l <= 64 {
		return ^uint64(0) << (64 - l), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - l)
}

// RandomIP6Routes returns n distinct prefixes inside 2000::/3 with an
// internet-like length mix and values 1..n in order.
func RandomIP6Routes(n int, seed int64) []Route6 {
	r := newRand(seed)
	type key struct {
		hi, lo uint64
		l      int
	}
	seen := make(map[key]struct{}, n)
	rs := make([]Route6, 0, n)
	for len(rs) < n {
		l := ip6Len(r)
		hi := 0x2000_0000_0000_0000 | r.Uint64()>>3
		lo := r.Uint64()
		mh, ml := mask6(l)
		hi, lo = hi&mh, lo&ml
		k := key{hi, lo, l}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		rs = append(rs, Route6{hi, lo, l, uint32(len(rs) + 1)})
	}
	return rs
}

// LoadIP6 inserts routes into t in one transaction.
func LoadIP6(t *fib.IP6, routes []Route6) error {
	return t.Update(func(tx *fib.IP6Txn) error {
		for _, rt := range routes {
			if err := tx.Set(rt.Hi, rt.Lo, rt.Len, rt.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// RandomIP6Table returns a table loaded with RandomIP6Routes(n, seed).
func RandomIP6Table(n int, seed int64) (*fib.IP6, []Route6) {
	rs := RandomIP6Routes(n, seed)
	t := fib.NewIP6()
	if err := LoadIP6(t, rs); err != nil {
		panic(err)
	}
	return t, rs
}

// IP6LookupAddrs returns n addresses as {hi, lo}: nine in ten inside a
// random route, the rest random within 2000::/3.
func IP6LookupAddrs(routes []Route6, n int, seed int64) [][2]uint64 {
	r := newRand(seed)
	out := make([][2]uint64, n)
	for i := range out {
		hi, lo := 0x2000_0000_0000_0000|r.Uint64()>>3, r.Uint64()
		if len(routes) != 0 && r.IntN(10) != 0 {
			rt := routes[r.IntN(len(routes))]
			mh, ml := mask6(rt.Len)
			hi, lo = rt.Hi|hi&^mh, rt.Lo|lo&^ml
		}
		out[i] = [2]uint64{hi, lo}
	}
	return out
}
