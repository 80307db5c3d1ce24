package fib

import (
	"math/rand/v2"
	"testing"
)

// ref4 is the naive reference: a set of prefixes and a linear longest match.
type ref4 map[[2]uint32]uint32 // {addr, plen} -> value

func (r ref4) lookup(a uint32) uint32 {
	best, v := -1, uint32(0)
	for k, val := range r {
		if l := int(k[1]); l > best && a&mask4(l) == k[0] {
			best, v = l, val
		}
	}
	return v
}

func (r ref4) clone() ref4 {
	c := make(ref4, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

type key6 struct {
	hi, lo uint64
	plen   int
}

type ref6 map[key6]uint32

func (r ref6) lookup(hi, lo uint64) uint32 {
	best, v := -1, uint32(0)
	for k, val := range r {
		if k.plen > best {
			mh, ml := mask6(k.plen)
			if hi&mh == k.hi && lo&ml == k.lo {
				best, v = k.plen, val
			}
		}
	}
	return v
}

func (r ref6) clone() ref6 {
	c := make(ref6, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

// checkIP4 verifies the writer's structural invariants against its prefix
// set. With full set it also recomputes every leaf of the trie, which is a
// complete correctness check of the published table.
func checkIP4(tb testing.TB, t *IP4, full bool) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.Snapshot()
	if s.def != t.byLen[0][0] {
		tb.Fatalf("default route %d, want %d", s.def, t.byLen[0][0])
	}
	if len(s.plies) != len(t.plies) {
		tb.Fatalf("writer arena len %d != published %d", len(t.plies), len(s.plies))
	}
	n := 0
	for _, m := range t.byLen {
		n += len(m)
	}
	if n != t.n || n != s.n {
		tb.Fatalf("count: maps %d, writer %d, snapshot %d", n, t.n, s.n)
	}
	n1 := map[uint32]uint32{} // /16 -> prefixes of len 17..32
	n2 := map[uint32]uint32{} // /24 -> prefixes of len 25..32
	for l := 17; l <= 32; l++ {
		for a := range t.byLen[l] {
			n1[a>>16]++
			if l > 24 {
				n2[a>>8]++
			}
		}
	}
	seen := map[uint32]bool{}
	live := 0
	leafOK := func(x uint32, ln uint8, base uint32, level int) {
		if !full {
			return
		}
		var wv uint32
		var wl uint8
		for l := level; l >= 1; l-- { // the default route is not in the trie
			if v, ok := t.byLen[l][base&mask4(l)]; ok {
				wv, wl = v, uint8(l+1)
				break
			}
		}
		if x != wv || ln != wl {
			tb.Fatalf("leaf %08x/%d = (%d,len+1=%d), want (%d,%d)", base, level, x, ln, wv, wl)
		}
	}
	visit := func(i uint32) {
		if i == 0 {
			return
		}
		if seen[i] {
			tb.Fatalf("ply %d reachable twice", i)
		}
		if int(i) >= len(s.plies) {
			tb.Fatalf("ply %d beyond arena %d", i, len(s.plies))
		}
		seen[i] = true
		live++
	}
	for c, ch := range s.root {
		if ch == 0 && !full {
			continue // the shared zero chunk; checked below
		}
		visit(ch)
		for s1 := range 256 {
			r := uint32(c)<<8 | uint32(s1)
			x := s.plies[ch][s1]
			if x&plyBit == 0 {
				if n1[r] != 0 {
					tb.Fatalf("/16 %04x has %d specifics but no ply", r, n1[r])
				}
				leafOK(x, t.meta[ch].lens[s1], r<<16, 16)
				continue
			}
			l1 := x &^ plyBit
			visit(l1)
			if t.meta[l1].n != n1[r] || n1[r] == 0 {
				tb.Fatalf("/16 %04x ply count %d, want %d", r, t.meta[l1].n, n1[r])
			}
			for s2 := range 256 {
				q := r<<8 | uint32(s2)
				y := s.plies[l1][s2]
				if y&plyBit == 0 {
					if n2[q] != 0 {
						tb.Fatalf("/24 %06x has %d specifics but no ply", q, n2[q])
					}
					leafOK(y, t.meta[l1].lens[s2], q<<8, 24)
					continue
				}
				l2 := y &^ plyBit
				visit(l2)
				if t.meta[l2].n != n2[q] || n2[q] == 0 {
					tb.Fatalf("/24 %06x ply count %d, want %d", q, t.meta[l2].n, n2[q])
				}
				for s3 := range 256 {
					z := s.plies[l2][s3]
					if z&plyBit != 0 {
						tb.Fatalf("child below a /32 ply")
					}
					leafOK(z, t.meta[l2].lens[s3], q<<8|uint32(s3), 32)
				}
			}
		}
	}
	if live != t.live {
		tb.Fatalf("reachable plies %d, writer counts %d", live, t.live)
	}
	if g := len(t.plies) - 1 - live; g > 64 && g > live/2 {
		tb.Fatalf("garbage %d not compacted (live %d)", g, live)
	}
	for i := range s.plies[0] {
		if s.plies[0][i] != 0 {
			tb.Fatalf("zero ply written")
		}
	}
}

// checkPtab verifies a paged table's counts, load and probe reachability.
func checkPtab[E hashEntry[E]](tb testing.TB, name string, x *ptab[E], seed uint64) {
	tb.Helper()
	if x.owned != nil {
		tb.Fatalf("%s: published table still marked owned", name)
	}
	if len(x.pages) != 1<<x.pbits || len(x.pn) != len(x.pages) {
		tb.Fatalf("%s: geometry", name)
	}
	if 2*x.n > len(x.pages)<<x.sbits {
		tb.Fatalf("%s: overloaded: %d in %d", name, x.n, len(x.pages)<<x.sbits)
	}
	n := 0
	for p, pg := range x.pages {
		k := 0
		if len(pg) != 1<<x.sbits {
			tb.Fatalf("%s: page size", name)
		}
		for _, e := range pg {
			if e.empty() {
				continue
			}
			k++
			if q, s, ok := x.find(e, seed); !ok || int(q) != p || !pg[s].sameKey(e) {
				tb.Fatalf("%s: entry unreachable", name)
			}
		}
		if int(x.pn[p]) != k || 4*k > 3<<x.sbits {
			tb.Fatalf("%s: page %d counts %d, holds %d", name, p, x.pn[p], k)
		}
		n += k
	}
	if n != x.n {
		tb.Fatalf("%s: counts %d, holds %d", name, x.n, n)
	}
}

// checkIP6 verifies table sizing, counts, the snapshot's length list and
// the /32 aggregate index against the tables.
func checkIP6(tb testing.TB, t *IP6) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.Snapshot()
	n, present := 0, 0
	want := map[uint64][2]uint64{}
	counts := map[aggKey6]int32{}
	for l := 128; l >= 0; l-- {
		x := t.tabs[l]
		if x == nil {
			continue
		}
		if x.n == 0 {
			tb.Fatalf("empty table for /%d published", l)
		}
		checkPtab(tb, "len", x, t.seed)
		mh, ml := mask6(l)
		for _, pg := range x.pages {
			for _, e := range pg {
				if e.v == 0 {
					continue
				}
				if e.hi&^mh|e.lo&^ml != 0 {
					tb.Fatalf("unmasked key in /%d", l)
				}
				if l > 32 {
					m := want[e.hi&aggMask6]
					if l <= 64 {
						m[0] |= 1 << (l - 33)
					} else {
						m[1] |= 1 << (l - 65)
					}
					want[e.hi&aggMask6] = m
					counts[aggKey6{e.hi & aggMask6, uint8(l)}]++
				}
			}
		}
		if present >= len(s.tabs) || int(s.pos[l]) != present || &s.tabs[present].pages[0] != &x.pages[0] ||
			s.tabs[present].mhi != mh || s.tabs[present].mlo != ml {
			tb.Fatalf("snapshot length list out of step at /%d", l)
		}
		if (l <= 32) != (present >= s.short) {
			tb.Fatalf("short index %d wrong at /%d", s.short, l)
		}
		present++
		n += x.n
	}
	if present != len(s.tabs) || n != t.n || n != s.n {
		tb.Fatalf("snapshot: %d lengths (want %d), n %d/%d/%d", len(s.tabs), present, n, t.n, s.n)
	}
	if len(counts) != len(t.aggN) {
		tb.Fatalf("aggregate counts: %d keys, want %d", len(t.aggN), len(counts))
	}
	for k, c := range counts {
		if t.aggN[k] != c {
			tb.Fatalf("aggregate count %v = %d, want %d", k, t.aggN[k], c)
		}
	}
	if len(want) == 0 {
		if t.agg != nil || len(s.agg.pages) != 0 {
			tb.Fatalf("empty aggregate index published")
		}
		return
	}
	checkPtab(tb, "agg", t.agg, t.seed)
	if t.agg.n != len(want) || &s.agg.pages[0] != &t.agg.pages[0] {
		tb.Fatalf("aggregate index holds %d, want %d", t.agg.n, len(want))
	}
	for k, m := range want {
		e := s.agg.find(k, t.seed)
		if e == nil || e.m0 != m[0] || e.m1 != m[1] {
			tb.Fatalf("aggregate %016x wrong", k)
		}
	}
}

var clusters4 = []uint32{0x0a000000, 0x0afeff00, 0xc0a80000, 0xffffff00, 0x00000000, 0x7fff0000}

// randPrefix4 draws clustered prefixes: a few base addresses with a handful of
// random bits flipped, so that prefixes nest and collide at every level.
func randPrefix4(r *rand.Rand) (uint32, int) {
	var l int
	switch r.IntN(4) {
	case 0:
		l = []int{0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32}[r.IntN(13)]
	default:
		l = r.IntN(33)
	}
	a := clusters4[r.IntN(len(clusters4))]
	if r.IntN(20) == 0 {
		a = r.Uint32()
	}
	for range r.IntN(5) {
		a ^= 1 << r.IntN(32)
	}
	return a & mask4(l), l
}

// probes4 returns addresses at and around the edges of the given prefixes
// plus random ones near the clusters.
func probes4(r *rand.Rand, ref ref4, n int) []uint32 {
	out := make([]uint32, 0, n)
	keys := make([][2]uint32, 0, len(ref))
	for k := range ref {
		keys = append(keys, k)
	}
	for len(out) < n {
		if len(keys) == 0 || r.IntN(4) == 0 {
			a, _ := randPrefix4(r)
			out = append(out, a|r.Uint32()&0xff)
			continue
		}
		k := keys[r.IntN(len(keys))]
		first, last := k[0], k[0]|^mask4(int(k[1]))
		out = append(out, first, last, first-1, last+1, first|r.Uint32()&^mask4(int(k[1])))
	}
	return out
}

var clusters6 = [][2]uint64{
	{0x2001_0db8_0000_0000, 0},
	{0x2001_0db8_ffff_ffff, 0xffff_ffff_ffff_ff00},
	{0xfe80_0000_0000_0000, 0x0000_0000_0000_0001},
	{0, 0},
	{0xffff_ffff_ffff_ffff, 0xffff_ffff_ffff_ffff},
}

func randPrefix6(r *rand.Rand) (uint64, uint64, int) {
	var l int
	switch r.IntN(4) {
	case 0:
		l = []int{0, 1, 32, 48, 63, 64, 65, 96, 127, 128}[r.IntN(10)]
	default:
		l = r.IntN(129)
	}
	c := clusters6[r.IntN(len(clusters6))]
	hi, lo := c[0], c[1]
	if r.IntN(20) == 0 {
		hi, lo = r.Uint64(), r.Uint64()
	}
	for range r.IntN(4) {
		if b := r.IntN(128); b < 64 {
			hi ^= 1 << b
		} else {
			lo ^= 1 << (b - 64)
		}
	}
	mh, ml := mask6(l)
	return hi & mh, lo & ml, l
}

func add128(hi, lo uint64, d int64) (uint64, uint64) {
	nlo := lo + uint64(d)
	switch {
	case d > 0 && nlo < lo:
		hi++
	case d < 0 && nlo > lo:
		hi--
	}
	return hi, nlo
}

func probes6(r *rand.Rand, ref ref6, n int) [][2]uint64 {
	out := make([][2]uint64, 0, n)
	keys := make([]key6, 0, len(ref))
	for k := range ref {
		keys = append(keys, k)
	}
	for len(out) < n {
		if len(keys) == 0 || r.IntN(4) == 0 {
			hi, lo, _ := randPrefix6(r)
			out = append(out, [2]uint64{hi, lo | r.Uint64()&0xff})
			continue
		}
		k := keys[r.IntN(len(keys))]
		mh, ml := mask6(k.plen)
		lh, ll := k.hi|^mh, k.lo|^ml
		ph, pl := add128(k.hi, k.lo, -1)
		nh, nl := add128(lh, ll, 1)
		out = append(out, [2]uint64{k.hi, k.lo}, [2]uint64{lh, ll}, [2]uint64{ph, pl}, [2]uint64{nh, nl},
			[2]uint64{k.hi | r.Uint64()&^mh, k.lo | r.Uint64()&^ml})
	}
	return out
}
