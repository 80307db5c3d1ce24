package fib

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// plyBit marks a slot that holds a child ply index instead of a leaf value.
const plyBit = 1 << 31

// ply4 is one 256-slot trie node: a root chunk (bits 23..16 under a
// directory entry for bits 31..24), a /24 ply or a /32 ply.
type ply4 [256]uint32

// meta4 is the writer-only companion of a ply. It never reaches readers, so
// it is kept out of the arena to keep the lookup working set dense.
type meta4 struct {
	// lens[i] is 1 + the length of the prefix that supplied leaf i, 0 for
	// "no route"; it decides precedence when prefixes overlap.
	lens [256]uint8
	// n counts the prefixes longer than the parent level inside this ply;
	// at 0 the ply carries nothing its parent slot could not and is removed.
	n uint32
}

// IP4 is one IPv4 FIB (one VRF). Any number of goroutines may look up
// concurrently with one another and with Update; Update calls are
// serialised. The zero value is an empty table ready to use.
type IP4 struct {
	cur atomic.Pointer[IP4Snapshot]

	mu sync.Mutex // serialises writers and guards everything below

	byLen [33]map[uint32]uint32 // authoritative prefix set
	n     int
	plies []ply4 // arena; plies[:len(cur.plies)] is shared with readers
	meta  []meta4
	live  int // plies reachable from the working root, excluding ply 0
}

// IP4Snapshot is an immutable version of an IP4 table.
type IP4Snapshot struct {
	// root maps bits 31..24 to the chunk holding the root slots for bits
	// 23..16. Index 0 is the shared all-zero ply.
	root  [256]uint32
	plies []ply4
	// def is the default route's value. It is kept out of the trie, where
	// it would be expanded into every slot that nothing longer covers and a
	// change (say, an uplink failover) would copy nearly the whole table.
	def uint32
	n   int
}

var emptySnap4 = &IP4Snapshot{plies: make([]ply4, 1)}

// NewIP4 returns an empty table.
func NewIP4() *IP4 {
	t := &IP4{}
	t.init()
	return t
}

func (t *IP4) init() {
	if t.plies == nil {
		t.plies = make([]ply4, 1, 16)
		t.meta = make([]meta4, 1, 16)
	}
}

// Snapshot returns the current version. Call it once per frame, not per
// packet: the atomic load is cheap but the result must stay consistent
// across the frame anyway.
func (t *IP4) Snapshot() *IP4Snapshot {
	if s := t.cur.Load(); s != nil {
		return s
	}
	return emptySnap4
}

// Lookup returns the value of the longest prefix containing addr (the
// host-order value of the big-endian address), or 0 if none does. It reads
// the snapshot's root directory and then at most three dependent slots.
func (s *IP4Snapshot) Lookup(addr uint32) uint32 {
	p := s.plies
	x := p[s.root[addr>>24]][addr>>16&0xff]
	if x&plyBit != 0 {
		x = p[x&^plyBit][addr>>8&0xff]
		if x&plyBit != 0 {
			x = p[x&^plyBit][addr&0xff]
		}
	}
	if x == 0 {
		x = s.def
	}
	return x
}

// Len returns the number of prefixes in this version.
func (s *IP4Snapshot) Len() int { return s.n }

// Len returns the number of prefixes in the current version.
func (t *IP4) Len() int { return t.Snapshot().n }

// Get returns the value stored for exactly addr/plen in the current
// version. It must not be called from inside an Update callback.
func (t *IP4) Get(addr uint32, plen int) (uint32, bool) {
	if uint(plen) > 32 {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.byLen[plen][addr]
	return v, ok
}

type route4 struct {
	addr uint32
	plen uint8
	v    uint32
}

// Walk calls fn for every prefix of the current version in (addr, plen)
// order until fn returns false. The prefixes are collected before the first
// call, so fn may call Update or Get.
func (t *IP4) Walk(fn func(addr uint32, plen int, v uint32) bool) {
	t.mu.Lock()
	rs := make([]route4, 0, t.n)
	for l, m := range t.byLen {
		for a, v := range m {
			rs = append(rs, route4{a, uint8(l), v})
		}
	}
	t.mu.Unlock()
	slices.SortFunc(rs, func(a, b route4) int {
		if c := cmp.Compare(a.addr, b.addr); c != 0 {
			return c
		}
		return cmp.Compare(a.plen, b.plen)
	})
	for _, r := range rs {
		if !fn(r.addr, int(r.plen), r.v) {
			return
		}
	}
}

func mask4(plen int) uint32 { return ^uint32(0) << (32 - plen) }

// Update runs fn with a transaction and publishes all of its changes as one
// new snapshot. If fn returns an error or panics, nothing is published and
// the table is left as it was.
func (t *IP4) Update(fn func(tx *IP4Txn) error) (err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	pub := t.Snapshot()
	tx := &IP4Txn{t: t, root: pub.root, base: uint32(len(pub.plies)), n0: t.n, live0: t.live}
	committed := false
	defer func() {
		tx.closed = true
		if !committed {
			tx.rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if tx.dirty {
		tx.commit()
	}
	committed = true
	return nil
}

// IP4Txn is a batch of changes to an IP4 table, valid only inside the
// Update callback that received it.
type IP4Txn struct {
	t    *IP4
	root [256]uint32
	// base is the published arena length: plies at or above it were created
	// by this transaction and may be written in place, plies below it are
	// shared with readers and must be copied first.
	base    uint32
	recycle []uint32 // plies of this transaction freed again, reusable at once
	undo    []undo4
	n0      int
	live0   int
	dirty   bool
	closed  bool
}

type undo4 struct {
	addr    uint32
	plen    uint8
	existed bool
	v       uint32
}

func (tx *IP4Txn) rollback() {
	t := tx.t
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := tx.undo[i]
		if u.existed {
			t.byLen[u.plen][u.addr] = u.v
		} else {
			delete(t.byLen[u.plen], u.addr)
		}
	}
	t.n, t.live = tx.n0, tx.live0
	// The tail beyond base was never published, so it can simply be reused.
	t.plies, t.meta = t.plies[:tx.base], t.meta[:tx.base]
}

func (tx *IP4Txn) commit() {
	t := tx.t
	if garbage := len(t.plies) - 1 - t.live; garbage > 64 && garbage > t.live/2 {
		tx.compact()
	}
	t.cur.Store(&IP4Snapshot{root: tx.root, plies: t.plies, def: t.byLen[0][0], n: t.n})
}

// compact copies the live plies into a fresh arena. The old one may still be
// in use by readers, so it is left to the garbage collector.
func (tx *IP4Txn) compact() {
	t := tx.t
	c := 1 + t.live + t.live/2 + 64
	np, nm := make([]ply4, 1, c), make([]meta4, 1, c)
	var cp func(i uint32, depth int) uint32
	cp = func(i uint32, depth int) uint32 {
		j := uint32(len(np))
		np, nm = append(np, t.plies[i]), append(nm, t.meta[i])
		if depth < 2 {
			for s := range 256 {
				if x := np[j][s]; x&plyBit != 0 {
					k := cp(x&^plyBit, depth+1)
					np[j][s] = k | plyBit
				}
			}
		}
		return j
	}
	for c, i := range tx.root {
		if i != 0 {
			tx.root[c] = cp(i, 0)
		}
	}
	t.plies, t.meta = np, nm
	tx.recycle = tx.recycle[:0]
}

// Len returns the number of prefixes including this transaction's changes.
func (tx *IP4Txn) Len() int { return tx.t.n }

// Get returns the value for exactly addr/plen including this transaction's
// changes.
func (tx *IP4Txn) Get(addr uint32, plen int) (uint32, bool) {
	if uint(plen) > 32 {
		return 0, false
	}
	v, ok := tx.t.byLen[plen][addr]
	return v, ok
}

// Set inserts addr/plen with value v or replaces its value.
func (tx *IP4Txn) Set(addr uint32, plen int, v uint32) error {
	if tx.closed {
		return ErrTxnDone
	}
	if uint(plen) > 32 {
		return ErrPrefixLen
	}
	if v == 0 || v > MaxValue {
		return ErrValue
	}
	if addr&^mask4(plen) != 0 {
		return ErrHostBits
	}
	t := tx.t
	m := t.byLen[plen]
	if m == nil {
		m = make(map[uint32]uint32)
		t.byLen[plen] = m
	}
	old, existed := m[addr]
	if existed && old == v {
		return nil
	}
	m[addr] = v
	tx.undo = append(tx.undo, undo4{addr, uint8(plen), existed, old})
	if !existed {
		t.n++
	}
	tx.dirty = true
	tx.set(addr, plen, v, existed)
	return nil
}

// Delete removes addr/plen; existed reports whether it was present.
func (tx *IP4Txn) Delete(addr uint32, plen int) (existed bool, err error) {
	if tx.closed {
		return false, ErrTxnDone
	}
	if uint(plen) > 32 {
		return false, ErrPrefixLen
	}
	if addr&^mask4(plen) != 0 {
		return false, ErrHostBits
	}
	t := tx.t
	old, ok := t.byLen[plen][addr]
	if !ok {
		return false, nil
	}
	delete(t.byLen[plen], addr)
	tx.undo = append(tx.undo, undo4{addr, uint8(plen), true, old})
	t.n--
	tx.dirty = true
	cv, cl := t.cover(addr, plen)
	tx.del(addr, plen, cv, cl)
	return true, nil
}

// cover returns the value and encoded length of the longest remaining prefix
// strictly shorter than plen that contains addr/plen, ignoring the default
// route, which lives outside the trie.
func (t *IP4) cover(addr uint32, plen int) (uint32, uint8) {
	for l := plen - 1; l >= 1; l-- {
		if m := t.byLen[l]; len(m) != 0 {
			if v, ok := m[addr&mask4(l)]; ok {
				return v, uint8(l + 1)
			}
		}
	}
	return 0, 0
}

func (tx *IP4Txn) set(addr uint32, plen int, v uint32, existed bool) {
	t := tx.t
	l := uint8(plen + 1)
	if plen == 0 {
		return
	}
	if plen <= 16 {
		tx.paintRoot(addr, plen, 0, l, v, l)
		return
	}
	c := addr >> 24
	ch := tx.mut(tx.root[c])
	tx.root[c] = ch
	l1 := tx.child(ch, int(addr>>16&0xff))
	if !existed {
		t.meta[l1].n++
	}
	if plen <= 24 {
		from := int(addr >> 8 & 0xff)
		tx.paint(l1, from, from+1<<(24-plen), 0, l, v, l)
		return
	}
	l2 := tx.child(l1, int(addr>>8&0xff))
	if !existed {
		t.meta[l2].n++
	}
	from := int(addr & 0xff)
	tx.paint(l2, from, from+1<<(32-plen), 0, l, v, l)
}

// del removes addr/plen from the trie, handing its slots to the covering
// prefix (cv, cl). A ply whose last more-specific prefix goes away is
// dropped without being painted first, which saves copying it: with nothing
// more specific left inside, all of its slots would equal the cover.
func (tx *IP4Txn) del(addr uint32, plen int, cv uint32, cl uint8) {
	t := tx.t
	l := uint8(plen + 1)
	if plen == 0 {
		return
	}
	if plen <= 16 {
		tx.paintRoot(addr, plen, l, l, cv, cl)
		return
	}
	c := addr >> 24
	ch := tx.mut(tx.root[c])
	tx.root[c] = ch
	s1 := int(addr >> 16 & 0xff)
	l1 := mustPly(t.plies[ch][s1])
	if t.meta[l1].n == 1 {
		t.plies[ch][s1], t.meta[ch].lens[s1] = cv, cl
		tx.release(l1)
		return
	}
	l1 = tx.mut(l1)
	t.plies[ch][s1] = l1 | plyBit
	t.meta[l1].n--
	if plen <= 24 {
		from := int(addr >> 8 & 0xff)
		tx.paint(l1, from, from+1<<(24-plen), l, l, cv, cl)
		return
	}
	s2 := int(addr >> 8 & 0xff)
	l2 := mustPly(t.plies[l1][s2])
	if t.meta[l2].n == 1 {
		t.plies[l1][s2], t.meta[l1].lens[s2] = cv, cl
		tx.release(l2)
		return
	}
	l2 = tx.mut(l2)
	t.plies[l1][s2] = l2 | plyBit
	t.meta[l2].n--
	from := int(addr & 0xff)
	tx.paint(l2, from, from+1<<(32-plen), l, l, cv, cl)
}

func mustPly(x uint32) uint32 {
	if x&plyBit == 0 {
		panic("fib: internal error: expected a child ply")
	}
	return x &^ plyBit
}

// paintRoot paints the root slots covered by a prefix of length <= 16,
// which may span several chunks.
func (tx *IP4Txn) paintRoot(addr uint32, plen int, lmin, lmax uint8, v uint32, nl uint8) {
	r := int(addr >> 16)
	end := r + 1<<(16-plen)
	for r < end {
		c, from := r>>8, r&0xff
		to := min(256, from+end-r)
		tx.root[c] = tx.paint(tx.root[c], from, to, lmin, lmax, v, nl)
		r += to - from
	}
}

// paint sets leaf (v, nl) in slots [from, to) of ply i and in every ply
// below them, wherever the current leaf came from a prefix whose encoded
// length is within [lmin, lmax]. It returns i's possibly new index; plies are
// copied only if something in them actually changes.
func (tx *IP4Txn) paint(i uint32, from, to int, lmin, lmax uint8, v uint32, nl uint8) uint32 {
	t := tx.t
	for s := from; s < to; s++ {
		x := t.plies[i][s]
		if x&plyBit != 0 {
			c := x &^ plyBit
			if nc := tx.paint(c, 0, 256, lmin, lmax, v, nl); nc != c {
				i = tx.mut(i)
				t.plies[i][s] = nc | plyBit
			}
			continue
		}
		if ln := t.meta[i].lens[s]; ln >= lmin && ln <= lmax && (x != v || ln != nl) {
			i = tx.mut(i)
			t.plies[i][s] = v
			t.meta[i].lens[s] = nl
		}
	}
	return i
}

// child returns a writable child ply under slot s of the writable ply p,
// creating it from the slot's leaf if necessary.
func (tx *IP4Txn) child(p uint32, s int) uint32 {
	t := tx.t
	x := t.plies[p][s]
	var c uint32
	if x&plyBit != 0 {
		c = tx.mut(x &^ plyBit)
	} else {
		lv := t.meta[p].lens[s]
		c = tx.alloc()
		pl, ml := &t.plies[c], &t.meta[c]
		for k := range pl {
			pl[k] = x
			ml.lens[k] = lv
		}
		ml.n = 0
	}
	t.plies[p][s] = c | plyBit
	return c
}

// mut returns a writable version of ply i, copying it if readers can see it.
func (tx *IP4Txn) mut(i uint32) uint32 {
	if i >= tx.base {
		return i
	}
	j := tx.alloc()
	t := tx.t
	t.plies[j], t.meta[j] = t.plies[i], t.meta[i]
	tx.drop(i)
	return j
}

// release drops ply i and every ply below it.
func (tx *IP4Txn) release(i uint32) {
	for _, x := range &tx.t.plies[i] {
		if x&plyBit != 0 {
			tx.release(x &^ plyBit)
		}
	}
	tx.drop(i)
}

func (tx *IP4Txn) drop(i uint32) {
	if i == 0 {
		return // the shared zero chunk is never owned by anyone
	}
	tx.t.live--
	if i >= tx.base {
		tx.recycle = append(tx.recycle, i)
	}
}

// alloc returns an uninitialised writable ply. Growing the arena copies it
// but keeps indices stable, so callers may hold indices across alloc (never
// pointers into the arena).
func (tx *IP4Txn) alloc() uint32 {
	t := tx.t
	t.live++
	if k := len(tx.recycle); k > 0 {
		i := tx.recycle[k-1]
		tx.recycle = tx.recycle[:k-1]
		return i
	}
	i := len(t.plies)
	if i >= plyBit {
		panic("fib: IPv4 trie exceeds 2^31 plies")
	}
	if i == cap(t.plies) {
		c := 2 * i
		if i >= 1<<16 {
			c = i + i/2
		}
		np, nm := make([]ply4, i, c), make([]meta4, i, c)
		copy(np, t.plies)
		copy(nm, t.meta)
		t.plies, t.meta = np, nm
	}
	t.plies, t.meta = t.plies[:i+1], t.meta[:i+1]
	return uint32(i)
}

// IP4Stats describes the size of an IP4 table.
type IP4Stats struct {
	Routes int
	Plies  int // live plies, root chunks included
	// ArenaPlies is the arena capacity in plies: live plies plus not yet
	// compacted garbage plus growth headroom.
	ArenaPlies int
	// Bytes approximates the writer's current arena and metadata. Superseded
	// arenas still held by readers and the prefix maps are not included.
	Bytes int
}

// Stats reports the table's size.
func (t *IP4) Stats() IP4Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := cap(t.plies)
	return IP4Stats{
		Routes:     t.n,
		Plies:      t.live,
		ArenaPlies: c,
		Bytes:      c * (int(unsafe.Sizeof(ply4{})) + int(unsafe.Sizeof(meta4{}))),
	}
}
