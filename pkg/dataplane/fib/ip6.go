package fib

import (
	"cmp"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// ent6 is one prefix-table slot, keyed by the masked address; v == 0 marks
// it empty.
type ent6 struct {
	hi, lo uint64
	v      uint32
}

func (e ent6) empty() bool             { return e.v == 0 }
func (e ent6) hash(seed uint64) uint64 { return hash6(e.hi, e.lo, seed) }
func (e ent6) sameKey(o ent6) bool     { return e.hi == o.hi && e.lo == o.lo }

// aggEnt6 lists the lengths > 32 present inside one /32: bit l-33 of m0 for
// lengths 33..64, bit l-65 of m1 for 65..128. Both zero marks an empty slot.
type aggEnt6 struct {
	key, m0, m1 uint64
}

func (e aggEnt6) empty() bool             { return e.m0|e.m1 == 0 }
func (e aggEnt6) hash(seed uint64) uint64 { return hash6(e.key, 0, seed) }
func (e aggEnt6) sameKey(o aggEnt6) bool  { return e.key == o.key }

// aggMask6 selects the /32 aggregate of an address's high half.
const aggMask6 = 0xffffffff_00000000

// hash6 mixes a masked key. Multiplication carries every input bit into the
// top bits, which is where page and slot are taken from, so keys that differ
// only in a few high bits (short prefixes) or only in lo (long ones) still
// spread. The seed keeps adversarial prefix sets from building long chains.
func hash6(hi, lo, seed uint64) uint64 {
	return ((hi^seed)*0x9e3779b97f4a7c15 ^ lo) * 0xd6e8feb86659fd93
}

// lenTab6 is what a lookup needs of one prefix length, stored inline in the
// snapshot so that moving to the next length costs no pointer chase.
type lenTab6 struct {
	mhi, mlo uint64
	pages    [][]ent6
	pshift   uint // 64 - page bits
	pbits    uint
	sshift   uint // 64 - slot bits
}

// aggView6 is the lookup view of the /32 aggregate index.
type aggView6 struct {
	pages  [][]aggEnt6
	pshift uint
	pbits  uint
	sshift uint
}

// IP6 is one IPv6 FIB (one VRF). Concurrency rules are those of IP4. The
// zero value is an empty table ready to use.
type IP6 struct {
	cur atomic.Pointer[IP6Snapshot]

	mu   sync.Mutex       // serialises writers and guards everything below
	tabs [129]*ptab[ent6] // published tables, also the authoritative prefix set
	n    int
	agg  *ptab[aggEnt6]    // published /32 aggregate index, nil if empty
	aggN map[aggKey6]int32 // prefixes per (/32, length > 32)
	seed uint64
	init bool
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
	agg  aggView6
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

func (t *lenTab6) probe(hi, lo, seed uint64) uint32 {
	kh, kl := hi&t.mhi, lo&t.mlo
	h := hash6(kh, kl, seed)
	pg := t.pages[h>>t.pshift]
	for j := h << t.pbits >> t.sshift; ; j++ {
		j &= uint64(len(pg) - 1)
		if e := &pg[j]; e.v == 0 || e.hi == kh && e.lo == kl {
			return e.v
		}
	}
}

func (a *aggView6) find(key, seed uint64) *aggEnt6 {
	h := hash6(key, 0, seed)
	pg := a.pages[h>>a.pshift]
	for j := h << a.pbits >> a.sshift; ; j++ {
		j &= uint64(len(pg) - 1)
		e := &pg[j]
		if e.m0|e.m1 == 0 {
			return nil
		}
		if e.key == key {
			return e
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
	if len(s.agg.pages) != 0 {
		if e := s.agg.find(hi&aggMask6, seed); e != nil {
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

func check6(hi, lo uint64, plen int) error {
	if uint(plen) > 128 {
		return ErrPrefixLen
	}
	if mhi, mlo := mask6(plen); hi&^mhi|lo&^mlo != 0 {
		return ErrHostBits
	}
	return nil
}

func get6(tb *ptab[ent6], hi, lo, seed uint64) (uint32, bool) {
	if tb == nil {
		return 0, false
	}
	if p, s, ok := tb.find(ent6{hi: hi, lo: lo}, seed); ok {
		return tb.pages[p][s].v, true
	}
	return 0, false
}

// Get returns the value stored for exactly hi/lo/plen in the current version.
// It must not be called from inside an Update callback.
func (t *IP6) Get(hi, lo uint64, plen int) (uint32, bool) {
	if uint(plen) > 128 {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return get6(t.tabs[plen], hi, lo, t.seed)
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
		for _, pg := range tb.pages {
			for _, e := range pg {
				if e.v != 0 {
					rs = append(rs, route6{e.hi, e.lo, uint8(l), e.v})
				}
			}
		}
	}
	t.mu.Unlock()
	slices.SortFunc(rs, func(a, b route6) int {
		return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo), cmp.Compare(a.plen, b.plen))
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
	if !t.init {
		t.seed, t.init = rand.Uint64(), true
		t.aggN = make(map[aggKey6]int32)
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
// length tables and pages it touches, so abandoning it needs no undo.
type IP6Txn struct {
	t     *IP6
	work  [129]*ptab[ent6]
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
			continue
		case tb.n == 0:
			tx.work[l] = nil
			continue
		}
		tb = tb.shrunk(t.seed)
		tb.owned = nil
		tx.work[l] = tb
	}
	t.tabs, t.n = tx.work, tx.n
	tx.commitAgg()
	s := &IP6Snapshot{seed: t.seed, n: t.n}
	if a := t.agg; a != nil {
		s.agg = aggView6{pages: a.pages, pshift: 64 - a.pbits, pbits: a.pbits, sshift: 64 - a.sbits}
	}
	for l := 128; l >= 0; l-- {
		if l == 32 {
			s.short = len(s.tabs)
		}
		if tb := t.tabs[l]; tb != nil {
			mhi, mlo := mask6(l)
			s.pos[l] = uint8(len(s.tabs))
			s.tabs = append(s.tabs, lenTab6{mhi: mhi, mlo: mlo, pages: tb.pages,
				pshift: 64 - tb.pbits, pbits: tb.pbits, sshift: 64 - tb.sbits})
		}
	}
	t.cur.Store(s)
}

// commitAgg folds the transaction's counts into the aggregate index,
// copying only the index pages of the /32s that gain or lose a length.
func (tx *IP6Txn) commitAgg() {
	t := tx.t
	var na *ptab[aggEnt6]
	for k, d := range tx.aggDelta {
		if d == 0 {
			continue
		}
		old := t.aggN[k]
		nw := old + d
		if nw == 0 {
			delete(t.aggN, k)
		} else {
			t.aggN[k] = nw
		}
		if (old == 0) == (nw == 0) {
			continue
		}
		if na == nil {
			if t.agg == nil {
				na = newPtab[aggEnt6](sizeBits(1))
			} else {
				na = t.agg.writable()
			}
		}
		var b0, b1 uint64
		if k.plen <= 64 {
			b0 = 1 << (k.plen - 33)
		} else {
			b1 = 1 << (k.plen - 65)
		}
		p, s, ok := na.find(aggEnt6{key: k.agg}, t.seed)
		switch {
		case !ok && nw != 0:
			na = na.insertNew(aggEnt6{k.agg, b0, b1}, t.seed)
		case !ok:
			panic("fib: internal error: clearing absent aggregate")
		case nw != 0:
			e := &na.page(p)[s]
			e.m0, e.m1 = e.m0|b0, e.m1|b1
		default:
			e := &na.page(p)[s]
			e.m0, e.m1 = e.m0&^b0, e.m1&^b1
			if e.m0|e.m1 == 0 {
				na.removeAt(p, s, t.seed)
			}
		}
	}
	if na == nil {
		return
	}
	if na.n == 0 {
		t.agg = nil
		return
	}
	na = na.shrunk(t.seed)
	na.owned = nil
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

// own returns a writable table for plen, taking a private header of the
// published one on first use in this transaction.
func (tx *IP6Txn) own(plen int) *ptab[ent6] {
	if tx.owned[plen] {
		return tx.work[plen]
	}
	var nt *ptab[ent6]
	if old := tx.work[plen]; old == nil {
		nt = newPtab[ent6](sizeBits(1))
	} else {
		nt = old.writable()
	}
	tx.work[plen], tx.owned[plen] = nt, true
	return nt
}

// Len returns the number of prefixes including this transaction's changes.
func (tx *IP6Txn) Len() int { return tx.n }

// Get returns the value for exactly hi/lo/plen including this transaction's
// changes.
func (tx *IP6Txn) Get(hi, lo uint64, plen int) (uint32, bool) {
	if uint(plen) > 128 {
		return 0, false
	}
	return get6(tx.work[plen], hi, lo, tx.t.seed)
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
	if tb := tx.work[plen]; tb != nil {
		if p, s, ok := tb.find(ent6{hi: hi, lo: lo}, seed); ok {
			if tb.pages[p][s].v != v {
				// A private header keeps the slot layout, so p and s hold.
				tx.own(plen).page(p)[s].v = v
				tx.dirty = true
			}
			return nil
		}
	}
	tx.work[plen] = tx.own(plen).insertNew(ent6{hi, lo, v}, seed)
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
	tb := tx.work[plen]
	if tb == nil {
		return false, nil
	}
	p, s, ok := tb.find(ent6{hi: hi, lo: lo}, seed)
	if !ok {
		return false, nil
	}
	tx.own(plen).removeAt(p, s, seed)
	tx.countAgg(hi, plen, -1)
	tx.n--
	tx.dirty = true
	return true, nil
}
