package fib

import (
	"cmp"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// ent6 is one hash slot; v == 0 marks it empty.
type ent6 struct {
	hi, lo uint64
	v      uint32
}

// tab6 is the hash table of one prefix length. Once published it is never
// written again; a transaction that changes it works on a copy.
type tab6 struct {
	ents  []ent6 // power-of-two length, at most half full
	shift uint   // 64 - log2(len(ents)): the hash's top bits pick the home slot
	n     int
}

// lenTab6 is what a lookup needs of one prefix length, stored inline in the
// snapshot so that moving to the next length costs no pointer chase.
type lenTab6 struct {
	mhi, mlo uint64
	ents     []ent6
	shift    uint
}

// IP6 is one IPv6 FIB (one VRF). Concurrency rules are those of IP4. The
// zero value is an empty table ready to use.
type IP6 struct {
	cur atomic.Pointer[IP6Snapshot]

	mu     sync.Mutex // serialises writers and guards everything below
	tabs   [129]*tab6 // published tables, also the authoritative prefix set
	n      int
	agg    aggTab6 // published /32 aggregate index
	aggN   map[aggKey6]uint32
	seed   uint64
	seeded bool
}

// aggKey6 counts the prefixes of one length > 32 inside one /32.
type aggKey6 struct {
	agg  uint64
	plen uint8
}

// IP6Snapshot is an immutable version of an IP6 table.
type IP6Snapshot struct {
	tabs []lenTab6 // present lengths, longest first
	// short is the index in tabs of the first length <= 32.
	short int
	// pos[l] is the index in tabs of length l (valid only for present l).
	pos  [129]uint8
	agg  aggTab6
	seed uint64
	n    int
}

var emptySnap6 = &IP6Snapshot{}

// NewIP6 returns an empty table.
func NewIP6() *IP6 { return &IP6{} }

// Snapshot returns the current version; call it once per frame.
func (t *IP6) Snapshot() *IP6Snapshot {
	if s := t.cur.Load(); s != nil {
		return s
	}
	return emptySnap6
}

// hash6 mixes a masked key. Multiplication carries every input bit into the
// top bits, which is where the slot index is taken from, so keys that differ
// only in a few high bits (short prefixes) or only in lo (long ones) still
// spread. The seed keeps adversarial prefix sets from building long chains.
func hash6(hi, lo, seed uint64) uint64 {
	return ((hi^seed)*0x9e3779b97f4a7c15 ^ lo) * 0xd6e8feb86659fd93
}

// probe is kept within the inlining budget: Lookup calls it in three loops.
func (t *lenTab6) probe(hi, lo, seed uint64) uint32 {
	kh, kl := hi&t.mhi, lo&t.mlo
	ents := t.ents
	for j := hash6(kh, kl, seed) >> t.shift; ; j++ {
		j &= uint64(len(ents) - 1)
		if e := &ents[j]; e.v == 0 || e.hi == kh && e.lo == kl {
			return e.v
		}
	}
}

// Lookup returns the value of the longest prefix containing the address
// whose big-endian halves are hi and lo, or 0 if none does.
//
// Probing every present length longest first costs one probe per length,
// and real IPv6 tables use 30-40 distinct lengths, most of them longer than
// /32. The /32 aggregate index narrows those down: it names, for each /32
// that contains longer prefixes, exactly which longer lengths occur in it
// (typically one to three). Lengths <= 32 are then probed longest first.
func (s *IP6Snapshot) Lookup(hi, lo uint64) uint32 {
	seed := s.seed
	if len(s.agg.ents) != 0 {
		if i := s.agg.find(hi&aggMask6, seed); i >= 0 {
			e := &s.agg.ents[i]
			for m := e.m1; m != 0; {
				b := 63 - bits.LeadingZeros64(m)
				m &^= 1 << b
				if v := s.tabs[s.pos[65+b]].probe(hi, lo, seed); v != 0 {
					return v
				}
			}
			for m := e.m0; m != 0; {
				b := 63 - bits.LeadingZeros64(m)
				m &^= 1 << b
				if v := s.tabs[s.pos[33+b]].probe(hi, lo, seed); v != 0 {
					return v
				}
			}
		}
	}
	for i := s.short; i < len(s.tabs); i++ {
		if v := s.tabs[i].probe(hi, lo, seed); v != 0 {
			return v
		}
	}
	return 0
}

// aggMask6 selects the /32 aggregate of an address's high half.
const aggMask6 = 0xffffffff_00000000

// aggEnt6 lists the lengths > 32 present inside one /32: bit l-33 of m0 for
// lengths 33..64, bit l-65 of m1 for 65..128. Both zero marks an empty slot.
type aggEnt6 struct {
	key, m0, m1 uint64
}

// aggTab6 is the /32 aggregate index, an open-addressing table like tab6.
// It changes only when a length appears in or vanishes from a /32, so
// route churn within known lengths does not copy it.
type aggTab6 struct {
	ents  []aggEnt6
	shift uint
	n     int
}

func (a *aggTab6) find(key, seed uint64) int {
	m := uint64(len(a.ents) - 1)
	for j := hash6(key, 0, seed) >> a.shift; ; j = (j + 1) & m {
		e := &a.ents[j]
		if e.m0|e.m1 == 0 {
			return -1
		}
		if e.key == key {
			return int(j)
		}
	}
}

func newAggTab6(size int) aggTab6 {
	return aggTab6{ents: make([]aggEnt6, size), shift: uint(65 - bits.Len(uint(size)))}
}

func (a *aggTab6) resized(size int, seed uint64) aggTab6 {
	na := newAggTab6(size)
	for _, e := range a.ents {
		if e.m0|e.m1 != 0 {
			na.insertNew(e, seed)
		}
	}
	return na
}

func (a *aggTab6) insertNew(e aggEnt6, seed uint64) {
	m := uint64(len(a.ents) - 1)
	j := hash6(e.key, 0, seed) >> a.shift
	for a.ents[j].m0|a.ents[j].m1 != 0 {
		j = (j + 1) & m
	}
	a.ents[j] = e
	a.n++
}

// set turns the bit for length l in the /32 key on or off in place; the
// caller owns a.
func (a *aggTab6) set(key uint64, l int, on bool, seed uint64) {
	var b0, b1 uint64
	if l <= 64 {
		b0 = 1 << (l - 33)
	} else {
		b1 = 1 << (l - 65)
	}
	if len(a.ents) != 0 {
		if i := a.find(key, seed); i >= 0 {
			e := &a.ents[i]
			if on {
				e.m0, e.m1 = e.m0|b0, e.m1|b1
				return
			}
			e.m0, e.m1 = e.m0&^b0, e.m1&^b1
			if e.m0|e.m1 == 0 {
				a.removeAt(uint64(i), seed)
			}
			return
		}
	}
	if !on {
		panic("fib: internal error: clearing absent aggregate")
	}
	if 2*(a.n+1) > len(a.ents) {
		*a = a.resized(max(4, 2*len(a.ents)), seed)
	}
	a.insertNew(aggEnt6{key, b0, b1}, seed)
}

func (a *aggTab6) removeAt(i uint64, seed uint64) {
	m := uint64(len(a.ents) - 1)
	a.n--
	for {
		a.ents[i] = aggEnt6{}
		j := i
		for {
			j = (j + 1) & m
			e := a.ents[j]
			if e.m0|e.m1 == 0 {
				return
			}
			if home := hash6(e.key, 0, seed) >> a.shift; (j-home)&m >= (j-i)&m {
				a.ents[i] = e
				i = j
				break
			}
		}
	}
}

// Len returns the number of prefixes in this version.
func (s *IP6Snapshot) Len() int { return s.n }

// Len returns the number of prefixes in the current version.
func (t *IP6) Len() int { return t.Snapshot().n }

func mask6(plen int) (uint64, uint64) {
	if plen <= 64 {
		return ^uint64(0) << (64 - plen), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - plen)
}

func (tb *tab6) find(hi, lo, seed uint64) int {
	if tb == nil {
		return -1
	}
	m := uint64(len(tb.ents) - 1)
	for j := hash6(hi, lo, seed) >> tb.shift; ; j = (j + 1) & m {
		e := &tb.ents[j]
		if e.v == 0 {
			return -1
		}
		if e.hi == hi && e.lo == lo {
			return int(j)
		}
	}
}

func newTab6(size int) *tab6 {
	return &tab6{ents: make([]ent6, size), shift: uint(65 - bits.Len(uint(size)))}
}

// resized returns a copy of tb with size slots.
func (tb *tab6) resized(size int, seed uint64) *tab6 {
	nt := newTab6(size)
	for _, e := range tb.ents {
		if e.v != 0 {
			nt.insertNew(e, seed)
		}
	}
	return nt
}

func (tb *tab6) insertNew(e ent6, seed uint64) {
	m := uint64(len(tb.ents) - 1)
	j := hash6(e.hi, e.lo, seed) >> tb.shift
	for tb.ents[j].v != 0 {
		j = (j + 1) & m
	}
	tb.ents[j] = e
	tb.n++
}

// removeAt empties slot i and shifts later members of the probe run back,
// so that lookups never need tombstones.
func (tb *tab6) removeAt(i uint64, seed uint64) {
	m := uint64(len(tb.ents) - 1)
	tb.n--
	for {
		tb.ents[i] = ent6{}
		j := i
		for {
			j = (j + 1) & m
			e := tb.ents[j]
			if e.v == 0 {
				return
			}
			// e may fill the hole unless its home lies cyclically in (i, j].
			if home := hash6(e.hi, e.lo, seed) >> tb.shift; (j-home)&m >= (j-i)&m {
				tb.ents[i] = e
				i = j
				break
			}
		}
	}
}

// Get returns the value stored for exactly hi/lo/plen in the current version.
// It must not be called from inside an Update callback.
func (t *IP6) Get(hi, lo uint64, plen int) (uint32, bool) {
	if uint(plen) > 128 {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return getTab6(t.tabs[plen], hi, lo, t.seed)
}

func getTab6(tb *tab6, hi, lo, seed uint64) (uint32, bool) {
	if i := tb.find(hi, lo, seed); i >= 0 {
		return tb.ents[i].v, true
	}
	return 0, false
}

type route6 struct {
	hi, lo uint64
	plen   uint8
	v      uint32
}

// Walk calls fn for every prefix of the current version in (address, plen)
// order until fn returns false. The prefixes are collected before the first
// call, so fn may call Update or Get.
func (t *IP6) Walk(fn func(hi, lo uint64, plen int, v uint32) bool) {
	t.mu.Lock()
	rs := make([]route6, 0, t.n)
	for l, tb := range t.tabs {
		if tb == nil {
			continue
		}
		for _, e := range tb.ents {
			if e.v != 0 {
				rs = append(rs, route6{e.hi, e.lo, uint8(l), e.v})
			}
		}
	}
	t.mu.Unlock()
	slices.SortFunc(rs, func(a, b route6) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return cmp.Compare(a.plen, b.plen)
	})
	for _, r := range rs {
		if !fn(r.hi, r.lo, int(r.plen), r.v) {
			return
		}
	}
}

// Update runs fn with a transaction and publishes all of its changes as one
// new snapshot. If fn returns an error or panics, nothing is published.
func (t *IP6) Update(fn func(tx *IP6Txn) error) (err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.seeded {
		t.seed, t.seeded = rand.Uint64(), true
	}
	tx := &IP6Txn{t: t, work: t.tabs, n: t.n}
	defer func() { tx.closed = true }()
	if err = fn(tx); err != nil {
		return err
	}
	if tx.dirty {
		tx.commit()
	}
	return nil
}

// IP6Txn is a batch of changes to an IP6 table, valid only inside the
// Update callback that received it. It works on private copies of the
// length tables it touches, so abandoning it needs no undo.
type IP6Txn struct {
	t     *IP6
	work  [129]*tab6
	owned [129]bool
	// aggDelta holds this transaction's changes to IP6.aggN, applied at
	// commit so that an abort has nothing to undo.
	aggDelta map[aggKey6]int32
	n        int
	dirty    bool
	closed   bool
}

func (tx *IP6Txn) commit() {
	t := tx.t
	for l, own := range tx.owned {
		tb := tx.work[l]
		switch {
		case !own:
		case tb.n == 0:
			tx.work[l] = nil
		case len(tb.ents) > 8 && tb.n*8 < len(tb.ents):
			// Shrink after mass deletes; the hysteresis against the growth
			// threshold (1/2) avoids resizing back and forth.
			tx.work[l] = tb.resized(tableSize6(tb.n), t.seed)
		}
	}
	t.tabs, t.n = tx.work, tx.n
	tx.commitAgg()
	s := &IP6Snapshot{seed: t.seed, n: t.n, agg: t.agg}
	for l := 128; l >= 0; l-- {
		if l == 32 {
			s.short = len(s.tabs)
		}
		if tb := t.tabs[l]; tb != nil {
			mhi, mlo := mask6(l)
			s.pos[l] = uint8(len(s.tabs))
			s.tabs = append(s.tabs, lenTab6{mhi: mhi, mlo: mlo, ents: tb.ents, shift: tb.shift})
		}
	}
	t.cur.Store(s)
}

// commitAgg folds the transaction's counts into the aggregate index,
// copying the index only if some /32 gains or loses a length.
func (tx *IP6Txn) commitAgg() {
	t := tx.t
	var na aggTab6
	copied := false
	for k, d := range tx.aggDelta {
		if d == 0 {
			continue
		}
		if t.aggN == nil {
			t.aggN = make(map[aggKey6]uint32)
		}
		old := t.aggN[k]
		nw := uint32(int64(old) + int64(d))
		if nw == 0 {
			delete(t.aggN, k)
		} else {
			t.aggN[k] = nw
		}
		if (old == 0) == (nw == 0) {
			continue
		}
		if !copied {
			na = aggTab6{ents: slices.Clone(t.agg.ents), shift: t.agg.shift, n: t.agg.n}
			copied = true
		}
		na.set(k.agg, int(k.plen), nw != 0, t.seed)
	}
	if !copied {
		return
	}
	switch {
	case na.n == 0:
		na = aggTab6{}
	case len(na.ents) > 8 && na.n*8 < len(na.ents):
		na = na.resized(tableSize6(na.n), t.seed)
	}
	t.agg = na
}

func (tx *IP6Txn) countAgg(hi uint64, plen int, d int32) {
	if plen <= 32 {
		return
	}
	if tx.aggDelta == nil {
		tx.aggDelta = make(map[aggKey6]int32)
	}
	tx.aggDelta[aggKey6{hi & aggMask6, uint8(plen)}] += d
}

// tableSize6 is the smallest power of two that holds n entries at load <= 1/2.
func tableSize6(n int) int {
	return max(4, 1<<bits.Len(uint(2*n-1)))
}

// own returns a writable table for plen, copying the published one on first
// use in this transaction.
func (tx *IP6Txn) own(plen int) *tab6 {
	if tx.owned[plen] {
		return tx.work[plen]
	}
	var nt *tab6
	if old := tx.work[plen]; old == nil {
		nt = newTab6(4)
	} else {
		nt = &tab6{ents: slices.Clone(old.ents), shift: old.shift, n: old.n}
	}
	tx.work[plen], tx.owned[plen] = nt, true
	return nt
}

func check6(hi, lo uint64, plen int) error {
	if uint(plen) > 128 {
		return ErrPrefixLen
	}
	if mhi, mlo := mask6(plen); hi&^mhi|lo&^mlo != 0 {
		return ErrHostBits
	}
	return nil
}

// Len returns the number of prefixes including this transaction's changes.
func (tx *IP6Txn) Len() int { return tx.n }

// Get returns the value for exactly hi/lo/plen including this transaction's
// changes.
func (tx *IP6Txn) Get(hi, lo uint64, plen int) (uint32, bool) {
	if uint(plen) > 128 {
		return 0, false
	}
	return getTab6(tx.work[plen], hi, lo, tx.t.seed)
}

// Set inserts hi/lo/plen with value v or replaces its value.
func (tx *IP6Txn) Set(hi, lo uint64, plen int, v uint32) error {
	if tx.closed {
		return ErrTxnDone
	}
	if err := check6(hi, lo, plen); err != nil {
		return err
	}
	if v == 0 || v > MaxValue {
		return ErrValue
	}
	seed := tx.t.seed
	if i := tx.work[plen].find(hi, lo, seed); i >= 0 {
		if tx.work[plen].ents[i].v == v {
			return nil
		}
		tb := tx.own(plen)
		tb.ents[i].v = v // the copy keeps the slot layout
		tx.dirty = true
		return nil
	}
	if tb := tx.work[plen]; tb != nil && 2*(tb.n+1) > len(tb.ents) {
		// Growing rehashes into a new table anyway, so skip the plain copy.
		tx.work[plen], tx.owned[plen] = tb.resized(2*len(tb.ents), seed), true
	}
	tb := tx.own(plen)
	tb.insertNew(ent6{hi, lo, v}, seed)
	tx.countAgg(hi, plen, 1)
	tx.n++
	tx.dirty = true
	return nil
}

// Delete removes hi/lo/plen; existed reports whether it was present.
func (tx *IP6Txn) Delete(hi, lo uint64, plen int) (existed bool, err error) {
	if tx.closed {
		return false, ErrTxnDone
	}
	if err := check6(hi, lo, plen); err != nil {
		return false, err
	}
	seed := tx.t.seed
	i := tx.work[plen].find(hi, lo, seed)
	if i < 0 {
		return false, nil
	}
	tx.own(plen).removeAt(uint64(i), seed)
	tx.countAgg(hi, plen, -1)
	tx.n--
	tx.dirty = true
	return true, nil
}
