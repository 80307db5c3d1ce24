package ipam

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestAddressArithmetic(t *testing.T) {
	b4 := netip.MustParsePrefix("10.0.1.0/26")
	if a := ordinalAddr(b4, 63); a != netip.MustParseAddr("10.0.1.63") || addrOrdinal(b4, a) != 63 {
		t.Errorf("v4 ordinal 63: %s", a)
	}
	b6 := netip.MustParsePrefix("fd00::ffff:ffff:ffff:ffc0/122")
	if a := ordinalAddr(b6, 63); a != netip.MustParseAddr("fd00::ffff:ffff:ffff:ffff") || addrOrdinal(b6, a) != 63 {
		t.Errorf("v6 ordinal 63: %s", a)
	}
	pool := netip.MustParsePrefix("fd00:1::/48")
	if n := poolBlocks(pool, 122); n != 1<<63 {
		t.Errorf("poolBlocks saturates: %d", n)
	}
	if got := nthBlock(pool, 122, 1<<40); got != netip.MustParsePrefix("fd00:1::4000:0:0/122") {
		t.Errorf("nthBlock(2^40) = %s", got)
	}
	if got := nthBlock(netip.MustParsePrefix("10.0.0.0/16"), 26, 5); got != netip.MustParsePrefix("10.0.1.64/26") {
		t.Errorf("nthBlock(5) = %s", got)
	}
	if got := nthBlock(netip.MustParsePrefix("fd00::/64"), 122, 1<<58-1); got != netip.MustParsePrefix("fd00::ffff:ffff:ffff:ffc0/122") {
		t.Errorf("last block = %s", got)
	}
}

// FuzzBlockOps applies a sequence of allocations and releases to a block
// and checks its invariants (IPAMBlock.Validate) and bookkeeping after each.
func FuzzBlockOps(f *testing.F) {
	f.Add([]byte{0x13, 0x82, 0x05, 0xff, 0x40, 0x81})
	f.Add([]byte{0x7f, 0x7f, 0xc0, 0xc1, 0x01})
	f.Fuzz(func(t *testing.T, ops []byte) {
		cidr := netip.MustParsePrefix("10.0.0.0/28")
		b, err := loadBlock(newBlock(cidr, "n1", time.Unix(0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		owned := map[netip.Addr]string{}
		for i, op := range ops {
			handle := fmt.Sprintf("h%d", op&3)
			switch {
			case op&0x80 == 0: // allocate (op>>2)&7 addresses
				n := int(op>>2) & 7
				free := b.free()
				got := b.allocate(n, handle, map[string]string{"op": fmt.Sprint(op & 1)})
				if len(got) != min(n, free) {
					t.Fatalf("op %d: allocate %d with %d free gave %d", i, n, free, len(got))
				}
				for _, a := range got {
					if _, dup := owned[a]; dup || !cidr.Contains(a) {
						t.Fatalf("op %d: allocated %s twice or outside the block", i, a)
					}
					owned[a] = handle
				}
			case op&0x40 == 0: // release one address by ordinal
				a := ordinalAddr(cidr, int(op)&15)
				rel := b.release([]int{int(op) & 15})
				if _, was := owned[a]; was != (len(rel) == 1) {
					t.Fatalf("op %d: release %s: %v (owned %v)", i, a, rel, was)
				}
				delete(owned, a)
			default: // release a handle
				ords := b.ordinalsOf(handle)
				b.release(ords)
				for a, h := range owned {
					if h == handle {
						delete(owned, a)
					}
				}
			}
			b.obj.Name = "10-0-0-0-28"
			if err := b.obj.Validate(); err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			if b.allocatedCount() != len(owned) {
				t.Fatalf("op %d: %d allocated, want %d", i, b.allocatedCount(), len(owned))
			}
			for a, h := range owned {
				if attr, ok := b.owner(addrOrdinal(cidr, a)); !ok || handleOf(attr) != h {
					t.Fatalf("op %d: %s owned by %q, block says %v", i, a, h, attr)
				}
			}
			if len(b.spec().Attributes) > len(owned) {
				t.Fatalf("op %d: %d attributes for %d allocations", i, len(b.spec().Attributes), len(owned))
			}
		}
	})
}
