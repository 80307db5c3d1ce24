package fib

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func verify6(tb testing.TB, s *IP6Snapshot, ref ref6, addrs [][2]uint64) {
	tb.Helper()
	for _, a := range addrs {
		if got, want := s.Lookup(a[0], a[1]), ref.lookup(a[0], a[1]); got != want {
			tb.Fatalf("Lookup(%016x:%016x) = %d, want %d", a[0], a[1], got, want)
		}
	}
}

func verifyWalk6(tb testing.TB, t *IP6, ref ref6) {
	tb.Helper()
	type rt struct {
		k key6
		v uint32
	}
	var got, want []rt
	t.Walk(func(hi, lo uint64, l int, v uint32) bool {
		got = append(got, rt{key6{hi, lo, l}, v})
		return true
	})
	for k, v := range ref {
		want = append(want, rt{k, v})
	}
	slices.SortFunc(want, func(a, b rt) int {
		return cmp.Or(cmp.Compare(a.k.hi, b.k.hi), cmp.Compare(a.k.lo, b.k.lo), cmp.Compare(a.k.plen, b.k.plen))
	})
	if !slices.Equal(got, want) {
		tb.Fatalf("Walk mismatch: %d prefixes, want %d", len(got), len(want))
	}
	if t.Len() != len(ref) {
		tb.Fatalf("Len = %d, want %d", t.Len(), len(ref))
	}
	for k, v := range ref {
		if g, ok := t.Get(k.hi, k.lo, k.plen); !ok || g != v {
			tb.Fatalf("Get(%v) = %d,%v want %d", k, g, ok, v)
		}
	}
}

// withPageBits runs f with tiny hash pages so that small tables span many
// pages and page-level copy-on-write, growth and shrinking get exercised.
func withPageBits(b uint, f func()) {
	old := pageBits6
	pageBits6 = b
	defer func() { pageBits6 = old }()
	f()
}

func TestIP6Random(t *testing.T) {
	for seed := range uint64(4) {
		if seed%2 == 1 {
			withPageBits(2, func() { testIP6Random(t, seed) })
		} else {
			testIP6Random(t, seed)
		}
	}
}

func testIP6Random(t *testing.T, seed uint64) {
	{
		r := rand.New(rand.NewPCG(seed, 6))
		tbl := NewIP6()
		ref := ref6{}
		type old struct {
			s   *IP6Snapshot
			ref ref6
		}
		var olds []old
		for round := range 150 {
			work := ref.clone()
			abort := r.IntN(8) == 0
			err := tbl.Update(func(tx *IP6Txn) error {
				for range 1 + r.IntN(40) {
					hi, lo, l := randPrefix6(r)
					k := key6{hi, lo, l}
					if r.IntN(3) == 0 {
						existed, err := tx.Delete(hi, lo, l)
						if err != nil {
							return err
						}
						if _, ok := work[k]; ok != existed {
							t.Fatalf("Delete(%v) existed=%v, want %v", k, existed, ok)
						}
						delete(work, k)
						continue
					}
					v := 1 + r.Uint32N(1000)
					if err := tx.Set(hi, lo, l, v); err != nil {
						return err
					}
					work[k] = v
					if g, ok := tx.Get(hi, lo, l); !ok || g != v || tx.Len() != len(work) {
						t.Fatalf("txn view out of step")
					}
				}
				if abort {
					return errAbort
				}
				return nil
			})
			if abort != (err != nil) {
				t.Fatalf("Update err = %v, abort %v", err, abort)
			}
			if !abort {
				ref = work
			}
			s := tbl.Snapshot()
			verify6(t, s, ref, probes6(r, ref, 150))
			if round%25 == 0 {
				checkIP6(t, tbl)
				verifyWalk6(t, tbl, ref)
				olds = append(olds, old{s, ref.clone()})
			}
		}
		checkIP6(t, tbl)
		for _, o := range olds {
			verify6(t, o.s, o.ref, probes6(r, o.ref, 300))
		}
		if err := tbl.Update(func(tx *IP6Txn) error {
			for k := range ref {
				if ok, err := tx.Delete(k.hi, k.lo, k.plen); !ok || err != nil {
					t.Fatalf("delete %v: %v %v", k, ok, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkIP6(t, tbl)
		if len(tbl.Snapshot().tabs) != 0 {
			t.Fatal("empty table still lists lengths")
		}
	}
}

// TestIP6Growth drives one length table through growth, deletes with
// backward shifting and shrinking.
func TestIP6Growth(t *testing.T) {
	testIP6Growth(t)
	withPageBits(3, func() { testIP6Growth(t) })
}

func testIP6Growth(t *testing.T) {
	tbl := NewIP6()
	var first *IP6Snapshot
	var firstRef ref6
	ref := ref6{}
	r := rand.New(rand.NewPCG(9, 9))
	for step := range 3 {
		_ = tbl.Update(func(tx *IP6Txn) error {
			for i := range 3000 {
				hi := 0x2001_0db8_0000_0000 | uint64(i)<<16
				if step == 1 && i%3 != 0 {
					ok, _ := tx.Delete(hi, 0, 48)
					if !ok {
						t.Fatalf("missing %x", hi)
					}
					delete(ref, key6{hi, 0, 48})
					continue
				}
				if step == 2 {
					if _, ok := ref[key6{hi, 0, 48}]; ok {
						_, _ = tx.Delete(hi, 0, 48)
						delete(ref, key6{hi, 0, 48})
					}
					continue
				}
				_ = tx.Set(hi, 0, 48, uint32(i+1))
				ref[key6{hi, 0, 48}] = uint32(i + 1)
			}
			return nil
		})
		checkIP6(t, tbl)
		verifyWalk6(t, tbl, ref)
		verify6(t, tbl.Snapshot(), ref, probes6(r, ref, 500))
		if step == 0 {
			first, firstRef = tbl.Snapshot(), ref.clone()
		}
		verify6(t, first, firstRef, probes6(r, firstRef, 500))
	}
}

func TestIP6Edges(t *testing.T) {
	tbl := NewIP6()
	ref := ref6{}
	set := func(hi, lo uint64, l int, v uint32) {
		t.Helper()
		if err := tbl.Update(func(tx *IP6Txn) error { return tx.Set(hi, lo, l, v) }); err != nil {
			t.Fatal(err)
		}
		ref[key6{hi, lo, l}] = v
	}
	del := func(hi, lo uint64, l int) {
		t.Helper()
		if err := tbl.Update(func(tx *IP6Txn) error {
			ok, err := tx.Delete(hi, lo, l)
			if !ok {
				t.Fatalf("delete missing")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		delete(ref, key6{hi, lo, l})
	}
	look := func(hi, lo uint64, want uint32) {
		t.Helper()
		if got := tbl.Snapshot().Lookup(hi, lo); got != want {
			t.Fatalf("Lookup(%016x:%016x) = %d, want %d", hi, lo, got, want)
		}
		if want != ref.lookup(hi, lo) {
			t.Fatalf("test expectation disagrees with reference")
		}
	}
	const db8 = 0x2001_0db8_0000_0000
	look(db8, 1, 0)
	set(0, 0, 0, 1) // default
	look(db8, 1, 1)
	look(^uint64(0), ^uint64(0), 1)
	set(db8, 0, 32, 2)
	look(db8, 0, 2)
	look(db8|0xffff_ffff, ^uint64(0), 2)
	look(db8-1, ^uint64(0), 1) // just below the /32
	set(db8, 1, 128, 3)        // host route
	look(db8, 1, 3)
	look(db8, 0, 2)
	look(db8, 2, 2)
	set(db8, 0, 64, 4)
	set(db8, 0x8000_0000_0000_0000, 65, 5) // first bit of lo
	look(db8, 0x7fff_ffff_ffff_ffff, 4)
	look(db8, 0x8000_0000_0000_0000, 5)
	set(^uint64(0), ^uint64(0), 128, 6)
	look(^uint64(0), ^uint64(0), 6)
	look(^uint64(0), ^uint64(0)-1, 1)
	set(db8, 0, 32, 7) // replace
	look(db8|1, 0, 7)
	del(db8, 0, 32) // delete covering prefix: /0 takes over outside /64
	look(db8|1, 0, 1)
	look(db8, 0, 4)
	del(0, 0, 0)
	look(db8|1, 0, 0)
	set(db8, 0, 128, MaxValue)
	look(db8, 0, MaxValue)
	checkIP6(t, tbl)
	verifyWalk6(t, tbl, ref)

	_ = tbl.Update(func(tx *IP6Txn) error {
		for _, c := range []struct {
			hi, lo uint64
			plen   int
			v      uint32
			want   error
		}{
			{db8 | 1, 0, 32, 1, ErrHostBits},
			{db8, 1, 64, 1, ErrHostBits},
			{db8, 1, 127, 1, ErrHostBits},
			{1, 0, 0, 1, ErrHostBits},
			{0, 0, 129, 1, ErrPrefixLen},
			{0, 0, -1, 1, ErrPrefixLen},
			{db8, 0, 32, 0, ErrValue},
			{db8, 0, 32, MaxValue + 1, ErrValue},
		} {
			if err := tx.Set(c.hi, c.lo, c.plen, c.v); !errors.Is(err, c.want) {
				t.Errorf("Set(%x %x /%d %d) = %v, want %v", c.hi, c.lo, c.plen, c.v, err, c.want)
			}
		}
		if _, err := tx.Delete(db8, 1, 64); !errors.Is(err, ErrHostBits) {
			t.Errorf("Delete host bits: %v", err)
		}
		if _, err := tx.Delete(0, 0, 200); !errors.Is(err, ErrPrefixLen) {
			t.Errorf("Delete plen: %v", err)
		}
		return nil
	})
	before := tbl.Snapshot()
	if err := tbl.Update(func(tx *IP6Txn) error {
		_ = tx.Set(0, 0, 0, 9)
		_, _ = tx.Delete(db8, 0, 64)
		return errAbort
	}); err != errAbort || tbl.Snapshot() != before {
		t.Fatal("aborted transaction published")
	}
	verifyWalk6(t, tbl, ref)
}

func TestIP6ZeroValueAndAllocs(t *testing.T) {
	var tbl IP6
	if tbl.Snapshot().Lookup(1, 2) != 0 {
		t.Fatal("zero table not empty")
	}
	r := rand.New(rand.NewPCG(3, 4))
	_ = tbl.Update(func(tx *IP6Txn) error {
		for range 2000 {
			hi, lo, l := randPrefix6(r)
			_ = tx.Set(hi, lo, l, 1+r.Uint32N(100))
		}
		return nil
	})
	addrs := probes6(r, ref6{}, 64)
	var sink uint32
	if n := testing.AllocsPerRun(100, func() {
		s := tbl.Snapshot()
		for _, a := range addrs {
			sink += s.Lookup(a[0], a[1])
		}
	}); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
	_ = sink
}
