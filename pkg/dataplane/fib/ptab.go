package fib

import (
	"math/bits"
	"slices"
)

// pageBits6 bounds the unit of copy-on-write in the IPv6 hash tables. A
// table bigger than one page is split by the hash's top bits into
// independent open-addressing pages of 1<<pageBits6 slots, so that changing
// one route copies one 24 KiB page plus the page list rather than a whole
// multi-megabyte length table. The price is one extra, usually cached, read
// of the page list per probe.
//
// It is a variable only so that tests can shrink pages to exercise paging on
// small tables; lookups read the geometry from each table, not from here.
var pageBits6 uint = 10

// hashEntry is a slot of a paged table: it knows its key's hash, whether it
// is empty and whether it has the same key as another.
type hashEntry[E any] interface {
	empty() bool
	hash(seed uint64) uint64
	sameKey(E) bool
}

// ptab is the writer's view of a paged open-addressing hash table with
// linear probing inside each page and at most half of the slots in use.
// Published tables are never written; a transaction calls writable for a
// private header and page copies the pages it modifies.
type ptab[E hashEntry[E]] struct {
	pages [][]E
	pn    []int32 // entries per page
	pbits uint    // log2(len(pages))
	sbits uint    // log2(page size)
	n     int
	owned []bool // pages this transaction-owned table may write in place
}

// sizeBits returns the page and slot bits for a table holding n entries.
func sizeBits(n int) (pbits, sbits uint) {
	total := uint(bits.Len(uint(max(2*n, 4) - 1)))
	if total <= pageBits6 {
		return 0, total
	}
	return total - pageBits6, pageBits6
}

func newPtab[E hashEntry[E]](pbits, sbits uint) *ptab[E] {
	np := 1 << pbits
	t := &ptab[E]{pages: make([][]E, np), pn: make([]int32, np), pbits: pbits, sbits: sbits, owned: make([]bool, np)}
	for i := range t.pages {
		t.pages[i] = make([]E, 1<<sbits)
		t.owned[i] = true
	}
	return t
}

// loc splits a hash into page (top bits) and home slot (the bits below).
func (t *ptab[E]) loc(h uint64) (p, s uint64) {
	return h >> (64 - t.pbits), h << t.pbits >> (64 - t.sbits)
}

func (t *ptab[E]) find(k E, seed uint64) (p, s uint64, ok bool) {
	p, s = t.loc(k.hash(seed))
	pg := t.pages[p]
	m := uint64(len(pg) - 1)
	for ; ; s = (s + 1) & m {
		if pg[s].empty() {
			return p, s, false
		}
		if pg[s].sameKey(k) {
			return p, s, true
		}
	}
}

// writable returns a private header for a transaction; pages stay shared
// until page copies them.
func (t *ptab[E]) writable() *ptab[E] {
	return &ptab[E]{
		pages: slices.Clone(t.pages), pn: slices.Clone(t.pn),
		pbits: t.pbits, sbits: t.sbits, n: t.n,
		owned: make([]bool, len(t.pages)),
	}
}

// page returns page p for writing, copying it on first use.
func (t *ptab[E]) page(p uint64) []E {
	if !t.owned[p] {
		t.pages[p] = slices.Clone(t.pages[p])
		t.owned[p] = true
	}
	return t.pages[p]
}

func (t *ptab[E]) put(e E, seed uint64) {
	p, s := t.loc(e.hash(seed))
	pg := t.page(p)
	m := uint64(len(pg) - 1)
	for !pg[s].empty() {
		s = (s + 1) & m
	}
	pg[s] = e
	t.pn[p]++
	t.n++
}

// full reports whether page p is too crowded for another entry: pages fill
// unevenly, and a full page would never end a probe.
func (t *ptab[E]) full(p uint64) bool { return 4*(int(t.pn[p])+1) > 3<<t.sbits }

// insertNew adds e, whose key must be absent, to the writable table t and
// returns the table to use from now on: a bigger rebuilt one if t was full.
func (t *ptab[E]) insertNew(e E, seed uint64) *ptab[E] {
	p, _ := t.loc(e.hash(seed))
	if 2*(t.n+1) > len(t.pages)<<t.sbits || t.full(p) {
		pb, sb := sizeBits(t.n + 1)
		if pb+sb <= t.pbits+t.sbits {
			pb, sb = sizeBits(len(t.pages) << t.sbits) // double
		}
		t = t.rebuilt(pb, sb, seed)
		if p, _ := t.loc(e.hash(seed)); t.full(p) {
			return t.insertNew(e, seed)
		}
	}
	t.put(e, seed)
	return t
}

// rebuilt returns a fresh table with the given geometry holding t's entries.
func (t *ptab[E]) rebuilt(pbits, sbits uint, seed uint64) *ptab[E] {
	for {
		nt := newPtab[E](pbits, sbits)
		ok := true
		for _, pg := range t.pages {
			for _, e := range pg {
				if e.empty() {
					continue
				}
				if p, _ := nt.loc(e.hash(seed)); nt.full(p) {
					ok = false
					break
				}
				nt.put(e, seed)
			}
			if !ok {
				break
			}
		}
		if ok {
			return nt
		}
		// Only a broken hash could cluster distinct keys this badly. A
		// handful of keys may still land in one small page by chance
		// (tests use 4-slot pages), so small tables may grow further
		// before that verdict.
		limit := 64 * max(t.n, 1<<pageBits6)
		if t.n < 64 {
			limit = max(limit, 1<<16)
		}
		if len(nt.pages)<<nt.sbits > limit {
			panic("fib: IPv6 hash table cannot spread its keys")
		}
		pbits, sbits = sizeBits(len(nt.pages) << nt.sbits)
	}
}

// shrunk returns t or, after mass deletes, a smaller copy. The hysteresis
// against the growth threshold avoids resizing back and forth.
func (t *ptab[E]) shrunk(seed uint64) *ptab[E] {
	if size := len(t.pages) << t.sbits; size > 8 && t.n*8 < size {
		pb, sb := sizeBits(t.n)
		return t.rebuilt(pb, sb, seed)
	}
	return t
}

// removeAt empties slot s of page p and shifts later members of its probe
// run back, so that lookups never need tombstones.
func (t *ptab[E]) removeAt(p, s uint64, seed uint64) {
	pg := t.page(p)
	m := uint64(len(pg) - 1)
	t.pn[p]--
	t.n--
	var zero E
	for {
		pg[s] = zero
		j := s
		for {
			j = (j + 1) & m
			e := pg[j]
			if e.empty() {
				return
			}
			// e may fill the hole unless its home lies cyclically in (s, j].
			if _, home := t.loc(e.hash(seed)); (j-home)&m >= (j-s)&m {
				pg[s] = e
				s = j
				break
			}
		}
	}
}
