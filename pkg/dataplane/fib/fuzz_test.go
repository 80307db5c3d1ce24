package fib

import (
	"errors"
	"testing"
)

// Fuzz inputs are sequences of fixed-size operations. Addresses are built
// from a few cluster bases plus fuzzer-chosen bits so that mutations produce
// nested and colliding prefixes instead of disjoint random ones. An op with
// kind 7 ends the current transaction, aborting it when its second byte is odd.

var fuzzTops4 = [4]uint32{0x0a, 0x0b, 0xc0, 0x00}

func fuzzAddr4(op []byte) uint32 {
	return fuzzTops4[op[2]&3]<<24 | uint32(op[2]>>2&3)<<16 | uint32(op[3])<<8 | uint32(op[4])
}

func FuzzIP4(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{
		0, 8, 0, 0, 0, 0, 1, // set 10.0.0.0/8
		1, 16, 4, 0, 0, 0, 2, // set 10.1.0.0/16
		2, 24, 4, 2, 0, 0, 3, // set 10.1.2.0/24
		3, 32, 4, 2, 3, 0, 4, // set 10.1.2.3/32
		6, 0, 4, 2, 3, 1, 0, // lookup
		7, 0, 0, 0, 0, 0, 0, // commit
		4, 16, 4, 0, 0, 0, 0, // delete 10.1.0.0/16
		6, 0, 4, 9, 0, 0, 0, // lookup 10.1.9.0
		7, 1, 0, 0, 0, 0, 0, // abort
		0, 0, 0, 0, 0, 0, 9, // set 0/0
		5, 32, 4, 2, 3, 0, 0, // delete the /32
		6, 0, 4, 2, 3, 0, 0,
	})
	f.Add([]byte{0, 7, 0, 0, 0, 0, 5, 0, 17, 1, 128, 0, 0, 6, 0, 25, 1, 128, 128, 0, 7, 4, 7, 0, 0, 0, 0, 6, 0, 1, 128, 129, 0, 0})
	f.Add([]byte{0, 250, 0, 0, 0, 0, 1, 0, 16, 2, 0, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 4, 16, 2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		tbl := NewIP4()
		committed := ref4{}
		var seen []uint32
		for len(data) >= 7 {
			work := committed.clone()
			abort := false
			before := tbl.Snapshot()
			err := tbl.Update(func(tx *IP4Txn) error {
				for len(data) >= 7 {
					op := data[:7]
					data = data[7:]
					l := int(op[1]) % 33
					a := fuzzAddr4(op)
					switch kind := op[0] % 8; {
					case kind < 4:
						v := 1 + uint32(op[6]) | uint32(op[0]>>3)<<8
						if op[1] >= 250 {
							if err := tx.Set(a, int(op[1]), v); !errors.Is(err, ErrPrefixLen) {
								t.Fatalf("Set plen %d: %v", op[1], err)
							}
							continue
						}
						if a&^mask4(l) != 0 && tx.Set(a, l, v) != ErrHostBits {
							t.Fatalf("host bits accepted")
						}
						a &= mask4(l)
						if err := tx.Set(a, l, v); err != nil {
							t.Fatal(err)
						}
						work[[2]uint32{a, uint32(l)}] = v
						seen = append(seen, a, a|^mask4(l))
					case kind < 6:
						a &= mask4(l)
						k := [2]uint32{a, uint32(l)}
						existed, err := tx.Delete(a, l)
						if _, ok := work[k]; err != nil || ok != existed {
							t.Fatalf("Delete(%08x/%d) = %v, %v; want existed %v", a, l, existed, err, ok)
						}
						delete(work, k)
					case kind == 6:
						// Readers must keep seeing the last committed version
						// while the transaction is open.
						a ^= uint32(op[5])
						if got, want := tbl.Snapshot().Lookup(a), committed.lookup(a); got != want {
							t.Fatalf("mid-transaction Lookup(%08x) = %d, want %d", a, got, want)
						}
						seen = append(seen, a)
					default:
						abort = op[1]&1 == 1
						if abort {
							return errAbort
						}
						return nil
					}
				}
				return nil
			})
			if (err != nil) != abort {
				t.Fatalf("Update = %v", err)
			}
			if abort {
				if tbl.Snapshot() != before {
					t.Fatal("aborted transaction published")
				}
			} else {
				committed = work
			}
			s := tbl.Snapshot()
			for _, a := range seen {
				for _, x := range [...]uint32{a, a - 1, a + 1} {
					if got, want := s.Lookup(x), committed.lookup(x); got != want {
						t.Fatalf("Lookup(%08x) = %d, want %d", x, got, want)
					}
				}
			}
		}
		checkIP4(t, tbl, false)
		verifyWalk4(t, tbl, committed)
	})
}

func fuzzAddr6(op []byte) (uint64, uint64) {
	c := clusters6[int(op[2])%len(clusters6)]
	hi, lo := c[0], c[1]
	for _, b := range op[3:5] {
		if b&128 == 0 {
			if b < 64 {
				hi ^= 1 << b
			} else {
				lo ^= 1 << (b - 64)
			}
		}
	}
	return hi, lo
}

func FuzzIP6(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{
		0, 32, 0, 255, 255, 0, 1, 0, // set 2001:db8::/32
		1, 48, 0, 40, 255, 0, 2, 0, // set a /48 below it
		2, 128, 0, 127, 255, 0, 3, 0, // host route
		6, 0, 0, 127, 255, 1, 0, 0, // lookup
		7, 0, 0, 0, 0, 0, 0, 0, // commit
		4, 32, 0, 255, 255, 0, 0, 0, // delete the /32
		6, 0, 0, 40, 255, 3, 0, 0,
		7, 1, 0, 0, 0, 0, 0, 0, // abort
		0, 0, 3, 255, 255, 0, 9, 0, // default route
		6, 0, 4, 255, 255, 0, 0, 0,
	})
	f.Add([]byte{0, 64, 1, 255, 255, 0, 1, 0, 0, 65, 1, 64, 255, 0, 2, 0, 0, 63, 1, 63, 255, 0, 3, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5, 64, 1, 255, 255, 0, 0, 0})
	// Small pages make every fuzzed table multi-page.
	old := pageBits6
	pageBits6 = 2
	defer func() { pageBits6 = old }()
	f.Fuzz(func(t *testing.T, data []byte) {
		tbl := NewIP6()
		committed := ref6{}
		var seen [][2]uint64
		for len(data) >= 8 {
			work := committed.clone()
			abort := false
			before := tbl.Snapshot()
			err := tbl.Update(func(tx *IP6Txn) error {
				for len(data) >= 8 {
					op := data[:8]
					data = data[8:]
					l := int(op[1]) % 129
					hi, lo := fuzzAddr6(op)
					mh, ml := mask6(l)
					switch kind := op[0] % 8; {
					case kind < 4:
						v := 1 + uint32(op[6]) | uint32(op[7])<<8
						if op[1] >= 250 {
							if err := tx.Set(hi, lo, int(op[1]), v); !errors.Is(err, ErrPrefixLen) {
								t.Fatalf("Set plen %d: %v", op[1], err)
							}
							continue
						}
						if hi&^mh|lo&^ml != 0 && tx.Set(hi, lo, l, v) != ErrHostBits {
							t.Fatalf("host bits accepted")
						}
						hi, lo = hi&mh, lo&ml
						if err := tx.Set(hi, lo, l, v); err != nil {
							t.Fatal(err)
						}
						work[key6{hi, lo, l}] = v
						seen = append(seen, [2]uint64{hi, lo}, [2]uint64{hi | ^mh, lo | ^ml})
					case kind < 6:
						hi, lo = hi&mh, lo&ml
						k := key6{hi, lo, l}
						existed, err := tx.Delete(hi, lo, l)
						if _, ok := work[k]; err != nil || ok != existed {
							t.Fatalf("Delete(%v) = %v, %v; want existed %v", k, existed, err, ok)
						}
						delete(work, k)
					case kind == 6:
						lo ^= uint64(op[5])
						if got, want := tbl.Snapshot().Lookup(hi, lo), committed.lookup(hi, lo); got != want {
							t.Fatalf("mid-transaction Lookup = %d, want %d", got, want)
						}
						seen = append(seen, [2]uint64{hi, lo})
					default:
						abort = op[1]&1 == 1
						if abort {
							return errAbort
						}
						return nil
					}
				}
				return nil
			})
			if (err != nil) != abort {
				t.Fatalf("Update = %v", err)
			}
			if abort {
				if tbl.Snapshot() != before {
					t.Fatal("aborted transaction published")
				}
			} else {
				committed = work
			}
			s := tbl.Snapshot()
			for _, a := range seen {
				for _, d := range [...]int64{0, -1, 1} {
					hi, lo := add128(a[0], a[1], d)
					if got, want := s.Lookup(hi, lo), committed.lookup(hi, lo); got != want {
						t.Fatalf("Lookup(%x:%x) = %d, want %d", hi, lo, got, want)
					}
				}
			}
		}
		checkIP6(t, tbl)
		verifyWalk6(t, tbl, committed)
	})
}
