package ipam

import (
	"maps"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/vecnet/vecnet/pkg/apis/projectcalico/v3"
)

// Address arithmetic on 128-bit integers (IPv4 addresses use the low 32
// bits). Blocks hold at most 4096 addresses (/20 for IPv4, /116 for IPv6).

type u128 struct{ hi, lo uint64 }

func addrU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var v u128
	for i := 0; i < 8; i++ {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}

func (v u128) addr(is4 bool) netip.Addr {
	if is4 {
		return netip.AddrFrom4([4]byte{byte(v.lo >> 24), byte(v.lo >> 16), byte(v.lo >> 8), byte(v.lo)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

func (v u128) add(w u128) u128 {
	lo, carry := bits.Add64(v.lo, w.lo, 0)
	hi, _ := bits.Add64(v.hi, w.hi, carry)
	return u128{hi, lo}
}

func (v u128) sub(w u128) u128 {
	lo, borrow := bits.Sub64(v.lo, w.lo, 0)
	hi, _ := bits.Sub64(v.hi, w.hi, borrow)
	return u128{hi, lo}
}

// shl shifts left by n < 64.
func (v u128) shl(n int) u128 {
	if n == 0 {
		return v
	}
	return u128{hi: v.hi<<n | v.lo>>(64-n), lo: v.lo << n}
}

// hostBits is the number of address bits of a prefix not in its mask.
func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

// blockLen is the number of addresses of a block.
func blockLen(p netip.Prefix) int { return 1 << hostBits(p) }

// ordinalAddr is the address at ordinal ord of a block.
func ordinalAddr(block netip.Prefix, ord int) netip.Addr {
	return addrU128(block.Addr()).add(u128{lo: uint64(ord)}).addr(block.Addr().Is4())
}

// addrOrdinal is the ordinal of an address of a block.
func addrOrdinal(block netip.Prefix, a netip.Addr) int {
	return int(addrU128(a).sub(addrU128(block.Addr())).lo)
}

// poolBlocks is how many blocks of size blockBits a pool holds, saturated at
// 2^63.
func poolBlocks(pool netip.Prefix, blockBits int) uint64 {
	n := blockBits - pool.Bits()
	if n >= 63 {
		return 1 << 63
	}
	return 1 << n
}

// nthBlock is block number k of a pool.
func nthBlock(pool netip.Prefix, blockBits int, k uint64) netip.Prefix {
	off := u128{lo: k}.shl(pool.Addr().BitLen() - blockBits)
	a := addrU128(pool.Masked().Addr()).add(off).addr(pool.Addr().Is4())
	return netip.PrefixFrom(a, blockBits)
}

// blockOf is the block of blockBits holding a.
func blockOf(a netip.Addr, blockBits int) netip.Prefix {
	p, _ := a.Prefix(blockBits)
	return p
}

// hostPrefix is an address as a /32 or /128.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// newBlock is a fresh, empty block object, affine to node unless node is "".
func newBlock(cidr netip.Prefix, node string, now time.Time) *v3.IPAMBlock {
	n := blockLen(cidr)
	b := &v3.IPAMBlock{
		ObjectMeta: metav1.ObjectMeta{Name: v3.BlockName(cidr)},
		Spec: v3.IPAMBlockSpec{
			CIDR:        cidr.String(),
			Allocations: make([]*int, n),
			Unallocated: make([]int, n),
			Attributes:  []v3.AllocationAttribute{},
		},
	}
	for i := range b.Spec.Unallocated {
		b.Spec.Unallocated[i] = i
	}
	if node != "" {
		aff := v3.AffinityForNode(node)
		b.Spec.Affinity = &aff
		t := metav1.NewTime(now)
		b.Spec.AffinityClaimTime = &t
	}
	return b
}

// blockState is an IPAMBlock being modified in memory: each method changes
// the spec as one write of the block will; the caller then Updates the
// object (with the resourceVersion it was read at).
type blockState struct {
	obj  *v3.IPAMBlock
	cidr netip.Prefix
	// wrote is set once the spec was changed.
	wrote bool
}

func loadBlock(obj *v3.IPAMBlock) (*blockState, error) {
	cidr, err := netip.ParsePrefix(obj.Spec.CIDR)
	if err != nil {
		return nil, err
	}
	if hostBits(cidr) > 12 || len(obj.Spec.Allocations) != blockLen(cidr) {
		return nil, errCorruptBlock(obj.Name, "allocations do not match the CIDR")
	}
	return &blockState{obj: obj, cidr: cidr}, nil
}

func (b *blockState) spec() *v3.IPAMBlockSpec { return &b.obj.Spec }

func (b *blockState) free() int { return len(b.spec().Unallocated) }

func (b *blockState) allocatedCount() int { return len(b.spec().Allocations) - b.free() }

func (b *blockState) empty() bool { return b.free() == len(b.spec().Allocations) }

// bump increments the block's sequence number for this write and returns it.
func (b *blockState) bump() int64 {
	if !b.wrote {
		b.spec().SequenceNumber++
		b.wrote = true
	}
	return b.spec().SequenceNumber
}

// attrIndex returns the index of an attribute entry for handle and attrs,
// reusing an identical one.
func (b *blockState) attrIndex(handleID string, attrs map[string]string) int {
	s := b.spec()
	for i, a := range s.Attributes {
		if a.HandleID != nil && *a.HandleID == handleID && maps.Equal(a.ActiveOwnerAttrs, attrs) {
			return i
		}
	}
	h := handleID
	var m map[string]string
	if len(attrs) > 0 {
		m = maps.Clone(attrs)
	}
	s.Attributes = append(s.Attributes, v3.AllocationAttribute{HandleID: &h, ActiveOwnerAttrs: m})
	return len(s.Attributes) - 1
}

func (b *blockState) record(ord int, idx int, seq int64) {
	s := b.spec()
	i := idx
	s.Allocations[ord] = &i
	if s.SequenceNumberForAllocation == nil {
		s.SequenceNumberForAllocation = map[string]int64{}
	}
	s.SequenceNumberForAllocation[strconv.Itoa(ord)] = seq
}

// allocate takes up to n free addresses, in the order of the free list.
func (b *blockState) allocate(n int, handleID string, attrs map[string]string) []netip.Addr {
	s := b.spec()
	if n > len(s.Unallocated) {
		n = len(s.Unallocated)
	}
	if n <= 0 {
		return nil
	}
	seq := b.bump()
	idx := b.attrIndex(handleID, attrs)
	out := make([]netip.Addr, 0, n)
	for _, ord := range s.Unallocated[:n] {
		b.record(ord, idx, seq)
		out = append(out, ordinalAddr(b.cidr, ord))
	}
	s.Unallocated = slices.Clone(s.Unallocated[n:])
	return out
}

// allocateAddr takes one given address; false if it is not free.
func (b *blockState) allocateAddr(a netip.Addr, handleID string, attrs map[string]string) bool {
	s := b.spec()
	ord := addrOrdinal(b.cidr, a)
	i := slices.Index(s.Unallocated, ord)
	if i < 0 || s.Allocations[ord] != nil {
		return false
	}
	seq := b.bump()
	b.record(ord, b.attrIndex(handleID, attrs), seq)
	s.Unallocated = slices.Delete(slices.Clone(s.Unallocated), i, i+1)
	return true
}

// owner returns the attribute entry of an allocated ordinal.
func (b *blockState) owner(ord int) (v3.AllocationAttribute, bool) {
	s := b.spec()
	if ord < 0 || ord >= len(s.Allocations) || s.Allocations[ord] == nil {
		return v3.AllocationAttribute{}, false
	}
	i := *s.Allocations[ord]
	if i < 0 || i >= len(s.Attributes) {
		return v3.AllocationAttribute{}, true
	}
	return s.Attributes[i], true
}

func handleOf(a v3.AllocationAttribute) string {
	if a.HandleID == nil {
		return ""
	}
	return *a.HandleID
}

// seqOf is the sequence number recorded for an allocated ordinal.
func (b *blockState) seqOf(ord int) int64 {
	return b.spec().SequenceNumberForAllocation[strconv.Itoa(ord)]
}

// release frees ordinals (released ones go to the back of the free list)
// and drops attribute entries no longer referenced. It returns the
// addresses freed per handle.
func (b *blockState) release(ords []int) map[string][]netip.Addr {
	s := b.spec()
	out := map[string][]netip.Addr{}
	for _, ord := range ords {
		attr, ok := b.owner(ord)
		if !ok {
			continue
		}
		b.bump()
		out[handleOf(attr)] = append(out[handleOf(attr)], ordinalAddr(b.cidr, ord))
		s.Allocations[ord] = nil
		delete(s.SequenceNumberForAllocation, strconv.Itoa(ord))
		s.Unallocated = append(s.Unallocated, ord)
	}
	if len(out) > 0 {
		b.compactAttributes()
	}
	if len(s.SequenceNumberForAllocation) == 0 {
		s.SequenceNumberForAllocation = nil
	}
	return out
}

func (b *blockState) compactAttributes() {
	s := b.spec()
	remap := make([]int, len(s.Attributes))
	for i := range remap {
		remap[i] = -1
	}
	var kept []v3.AllocationAttribute
	for _, a := range s.Allocations {
		if a == nil || *a < 0 || *a >= len(remap) {
			continue
		}
		if remap[*a] < 0 {
			remap[*a] = len(kept)
			kept = append(kept, s.Attributes[*a])
		}
	}
	for ord, a := range s.Allocations {
		if a != nil && *a >= 0 && *a < len(remap) {
			n := remap[*a]
			s.Allocations[ord] = &n
		}
	}
	if kept == nil {
		kept = []v3.AllocationAttribute{}
	}
	s.Attributes = kept
}

// ordinalsOf lists the allocated ordinals held by a handle.
func (b *blockState) ordinalsOf(handleID string) []int {
	var out []int
	for ord := range b.spec().Allocations {
		if a, ok := b.owner(ord); ok && handleOf(a) == handleID {
			out = append(out, ord)
		}
	}
	return out
}

// Allocation is one allocated address of a block and its owner.
type Allocation struct {
	Addr     netip.Addr
	HandleID string
	Attrs    map[string]string
}

// BlockAllocations lists the allocated addresses of an IPAMBlock read
// elsewhere (e.g. from an informer), so that readers outside this package
// need not know how allocations and attributes are laid out.
func BlockAllocations(b *v3.IPAMBlock) []Allocation {
	cidr, err := netip.ParsePrefix(b.Spec.CIDR)
	if err != nil {
		return nil
	}
	var out []Allocation
	for ord, ai := range b.Spec.Allocations {
		if ai == nil || *ai < 0 || *ai >= len(b.Spec.Attributes) || ord >= blockLen(cidr.Masked()) {
			continue
		}
		at := b.Spec.Attributes[*ai]
		if at.HandleID == nil {
			continue
		}
		out = append(out, Allocation{Addr: ordinalAddr(cidr.Masked(), ord), HandleID: *at.HandleID, Attrs: at.ActiveOwnerAttrs})
	}
	return out
}
