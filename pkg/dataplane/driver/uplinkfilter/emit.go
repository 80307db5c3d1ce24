package uplinkfilter

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The programs are written with cilium/ebpf's asm package rather than
// compiled from C: there is no clang in the build, no object file to keep
// in step with the source, and the one function below (decision) is the
// whole decision for all three program types, which differ only in how they
// reach the frame's bytes (frameAccess) and in what they return (the tails).

// Register use. R0-R5 are scratch: helper calls clobber them, and so do
// LD_ABS/LD_IND, which the kernel rewrites into helper calls. Whatever must
// survive a map lookup lives in R6-R9.
const (
	rCtx  = asm.R6 // program context; LD_ABS/LD_IND require it in R6
	rData = asm.R7 // direct access: first byte of the frame
	rEnd  = asm.R8 // direct access: data_end; skb loads: frame length
	rIHL  = asm.R9 // IPv4 header length in bytes (IHL*4)
)

// Stack slots of the map keys (offsets from R10, the frame pointer). The
// IPv4 and IPv6 paths never meet, so their keys may share bytes.
const (
	fpKey4  = -8  // IPv4 LPM key: prefix length (u32, host order), address
	fpAddr4 = -4  // the address part alone: the node address key
	fpPort  = -12 // UDP port key: 2 bytes, network order
	fpKey6  = -24 // IPv6 LPM key: prefix length (u32, host order), address
)

// Context field offsets. struct xdp_md and struct __sk_buff are UAPI
// (include/uapi/linux/bpf.h) and only ever grow at the end.
const (
	xdpMDData         = 0
	xdpMDDataEnd      = 4
	xdpMDRxQueueIndex = 16

	skbLen     = 0
	skbData    = 76
	skbDataEnd = 80
)

// Return codes.
const (
	xdpPass     = 2 // XDP_PASS
	xdpTX       = 3 // XDP_TX: never used in production, see xdpTestOurs
	xdpRedirect = 4 // XDP_REDIRECT

	// tcx (include/uapi/linux/bpf.h, enum tcx_action_base). TCX_NEXT, not
	// TCX_PASS, for frames that are not ours: it lets programs after ours
	// on the same hook still see the frame, and acts as a pass when ours is
	// the last.
	tcxNext = -1
	tcxDrop = 2

	// A socket filter returns how many bytes of the packet to keep: all of
	// it, or none.
	sockKeepAll = -1 // 0xFFFFFFFF as the kernel's u32
	sockDrop    = 0
)

// Symbols inside a program.
const (
	labelOurs    = "ours"
	labelNotOurs = "not_ours"
	labelIPv4    = "ipv4"
	labelLinear  = "linear"
)

// frameAccess is how a program type reads the frame. Every read is preceded
// by a length check (need, needL4) that jumps to "not ours" when the frame
// is too short, so a read never fails.
type frameAccess interface {
	// prologue runs first, with the context in rCtx.
	prologue(b *builder)
	// need jumps to fail unless the frame has at least n bytes.
	need(b *builder, n int32, fail string)
	// needL4 jumps to fail unless the frame has at least
	// ethHdrLen+rIHL+n bytes. copyL4Half is valid after it until the
	// next helper call.
	needL4(b *builder, n int32, fail string)
	// load sets R0 to the size-byte big-endian number at off.
	load(b *builder, off int32, size asm.Size)
	// copyWords copies n bytes (a multiple of 4) at off unchanged to the
	// stack at fp.
	copyWords(b *builder, off int32, n int, fp int16)
	// copyL4Half copies the 2 bytes at ethHdrLen+rIHL+off unchanged to the
	// stack at fp.
	copyL4Half(b *builder, off int32, fp int16)
}

// directAccess reads the frame through packet pointers (XDP, tc): fastest,
// and the verifier accepts a read only after a comparison against data_end
// that covers it, which need and needL4 are.
type directAccess struct {
	dataOff, endOff int16 // data/data_end fields of the context
	// pull makes the linear part of the skb cover the headers (tc, see
	// prologue). XDP frames are always one linear buffer.
	pull bool
}

func (d directAccess) loadPointers(b *builder) {
	b.emit(
		asm.LoadMem(rData, rCtx, d.dataOff, asm.Word),
		asm.LoadMem(rEnd, rCtx, d.endOff, asm.Word),
	)
}

func (d directAccess) prologue(b *builder) {
	d.loadPointers(b)
	if !d.pull {
		return
	}
	// At tc, data_end is the end of the skb's linear part, and a driver may
	// leave headers in page fragments. The AF_PACKET socket filter reads
	// past the linear part (LD_ABS falls back to skb_copy_bits), so if tc
	// read only the linear part the two could disagree and a frame would
	// reach both vecnetd and the kernel. So when the linear part is shorter
	// than min(len, maxHeaderBytes), pull that much into it first. This is
	// rare (drivers put the headers in the linear part), but pulling a
	// cloned skb copies its head, so it is not done for every short frame.
	b.emit(
		asm.Mov.Reg(asm.R1, rData),
		asm.Add.Imm(asm.R1, maxHeaderBytes),
		asm.JLE.Reg(asm.R1, rEnd, labelLinear),
		asm.LoadMem(asm.R2, rCtx, skbLen, asm.Word),
		asm.JLE.Imm(asm.R2, maxHeaderBytes, "short"),
		asm.Mov.Imm(asm.R2, maxHeaderBytes),
		asm.Mov.Reg(asm.R1, rData).WithSymbol("short"),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.JLE.Reg(asm.R1, rEnd, labelLinear),
		asm.Mov.Reg(asm.R1, rCtx),
		asm.FnSkbPullData.Call(),
	)
	// The helper invalidates every packet pointer: load them again. A
	// failed pull (out of memory) leaves the skb as it was; the checks
	// below then see a short frame and leave it to the kernel.
	d.loadPointers(b)
	b.mark(labelLinear)
}

func (directAccess) need(b *builder, n int32, fail string) {
	b.emit(
		asm.Mov.Reg(asm.R1, rData),
		asm.Add.Imm(asm.R1, n),
		asm.JGT.Reg(asm.R1, rEnd, fail),
	)
}

// needL4 leaves rData+rIHL in R2 for copyL4Half: the verifier gives every
// packet pointer with a variable offset an identity of its own, so the
// pointer copyL4Half reads through must be the very one compared with
// data_end, not the same sum computed again.
func (directAccess) needL4(b *builder, n int32, fail string) {
	b.emit(
		asm.Mov.Reg(asm.R2, rData),
		asm.Add.Reg(asm.R2, rIHL),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.Add.Imm(asm.R3, ethHdrLen+n),
		asm.JGT.Reg(asm.R3, rEnd, fail),
	)
}

func (directAccess) load(b *builder, off int32, size asm.Size) {
	b.emit(asm.LoadMem(asm.R0, rData, int16(off), size))
	toNumber(b, size)
}

func (directAccess) copyWords(b *builder, off int32, n int, fp int16) {
	for i := 0; i < n; i += 4 {
		b.emit(
			asm.LoadMem(asm.R0, rData, int16(off)+int16(i), asm.Word),
			asm.StoreMem(asm.RFP, fp+int16(i), asm.R0, asm.Word),
		)
	}
}

func (directAccess) copyL4Half(b *builder, off int32, fp int16) {
	b.emit(
		asm.LoadMem(asm.R0, asm.R2, int16(ethHdrLen+off), asm.Half),
		asm.StoreMem(asm.RFP, fp, asm.R0, asm.Half),
	)
}

// toNumber turns the network-order bytes just loaded into R0 into their
// value (a no-op on big-endian hosts), so that every frameAccess hands the
// decision the same numbers.
func toNumber(b *builder, size asm.Size) {
	if size != asm.Byte {
		b.emit(asm.HostTo(asm.BE, asm.R0, size))
	}
}

// skbLoadAccess reads the frame with LD_ABS/LD_IND (socket filters have no
// direct packet access). The kernel turns each into a helper call that
// reads through skb_copy_bits when the bytes are not in the linear part,
// and returns the value converted from network order. skb->len is the
// whole frame: AF_PACKET runs the filter of a SOCK_RAW socket with skb->data
// at the Ethernet header.
//
// A load past the end would end the program with 0 ("drop", not ours), but
// the explicit length checks come first so the decision does not depend on
// that.
type skbLoadAccess struct{}

func (skbLoadAccess) prologue(b *builder) {
	b.emit(asm.LoadMem(rEnd, rCtx, skbLen, asm.Word))
}

func (skbLoadAccess) need(b *builder, n int32, fail string) {
	b.emit(asm.JLT.Imm(rEnd, n, fail))
}

func (skbLoadAccess) needL4(b *builder, n int32, fail string) {
	b.emit(
		asm.Mov.Reg(asm.R1, rIHL),
		asm.Add.Imm(asm.R1, ethHdrLen+n),
		asm.JGT.Reg(asm.R1, rEnd, fail),
	)
}

func (skbLoadAccess) load(b *builder, off int32, size asm.Size) {
	b.emit(asm.LoadAbs(off, size))
}

func (skbLoadAccess) copyWords(b *builder, off int32, n int, fp int16) {
	for i := 0; i < n; i += 4 {
		b.emit(
			asm.LoadAbs(off+int32(i), asm.Word),
			asm.HostTo(asm.BE, asm.R0, asm.Word), // back to network order
			asm.StoreMem(asm.RFP, fp+int16(i), asm.R0, asm.Word),
		)
	}
}

func (skbLoadAccess) copyL4Half(b *builder, off int32, fp int16) {
	b.emit(
		asm.LoadInd(asm.R0, rIHL, ethHdrLen+off, asm.Half),
		asm.HostTo(asm.BE, asm.R0, asm.Half), // back to network order
		asm.StoreMem(asm.RFP, fp, asm.R0, asm.Half),
	)
}

// maps are the maps a decision looks up.
type maps struct {
	prefix4, prefix6, nodes, ports *ebpf.Map
}

// decision emits a whole program: the decision Decide describes, read
// through acc, ending in ours or notOurs. Each tail runs with the context
// still in R6 and must end with an exit.
func decision(acc frameAccess, m maps, ours, notOurs asm.Instructions) asm.Instructions {
	b := &builder{}
	b.emit(asm.Mov.Reg(rCtx, asm.R1))
	acc.prologue(b)

	// Ethernet.
	acc.need(b, ethHdrLen, labelNotOurs)
	acc.load(b, ethTypeOff, asm.Half)
	b.emit(
		asm.JEq.Imm(asm.R0, etherTypeIPv4, labelIPv4),
		asm.JNE.Imm(asm.R0, etherTypeIPv6, labelNotOurs),
	)

	// IPv6: ours iff the destination is in a prefix.
	acc.need(b, ethHdrLen+ipv6HdrLen, labelNotOurs)
	acc.load(b, ethHdrLen, asm.Byte)
	b.emit(
		asm.RSh.Imm(asm.R0, 4),
		asm.JNE.Imm(asm.R0, 6, labelNotOurs),
		asm.StoreImm(asm.RFP, fpKey6, 128, asm.Word),
	)
	acc.copyWords(b, ethHdrLen+ipv6DstOff, 16, fpKey6+4)
	lookup(b, m.prefix6, fpKey6)
	b.emit(
		asm.JNE.Imm(asm.R0, 0, labelOurs),
		asm.Ja.Label(labelNotOurs),
	)

	// IPv4: version, IHL, the whole header in the frame.
	b.mark(labelIPv4)
	acc.need(b, ethHdrLen+ipv4MinHdrLen, labelNotOurs)
	acc.load(b, ethHdrLen+ipv4VerIHLOff, asm.Byte)
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.RSh.Imm(asm.R1, 4),
		asm.JNE.Imm(asm.R1, 4, labelNotOurs),
		asm.Mov.Reg(rIHL, asm.R0),
		asm.And.Imm(rIHL, 0x0f),
		asm.LSh.Imm(rIHL, 2),
		asm.JLT.Imm(rIHL, ipv4MinHdrLen, labelNotOurs),
	)
	acc.needL4(b, 0, labelNotOurs)

	// Destination in a prefix?
	b.emit(asm.StoreImm(asm.RFP, fpKey4, 32, asm.Word))
	acc.copyWords(b, ethHdrLen+ipv4DstOff, 4, fpAddr4)
	lookup(b, m.prefix4, fpKey4)
	b.emit(asm.JNE.Imm(asm.R0, 0, labelOurs))

	// Else a tunnel to the node: IPIP, 6in4, or UDP to one of the ports.
	lookup(b, m.nodes, fpAddr4)
	b.emit(asm.JEq.Imm(asm.R0, 0, labelNotOurs))
	acc.load(b, ethHdrLen+ipv4ProtoOff, asm.Byte)
	b.emit(
		asm.JEq.Imm(asm.R0, protoIPIP, labelOurs),
		asm.JEq.Imm(asm.R0, protoIPv6, labelOurs),
		asm.JNE.Imm(asm.R0, protoUDP, labelNotOurs),
	)
	acc.load(b, ethHdrLen+ipv4FragOff, asm.Half)
	b.emit(
		asm.And.Imm(asm.R0, ipv4FragOffMask),
		asm.JNE.Imm(asm.R0, 0, labelNotOurs),
	)
	acc.needL4(b, udpHdrLen, labelNotOurs)
	acc.copyL4Half(b, udpDstPortOff, fpPort)
	lookup(b, m.ports, fpPort)
	b.emit(asm.JEq.Imm(asm.R0, 0, labelNotOurs))

	b.mark(labelOurs)
	b.emit(ours...)
	b.mark(labelNotOurs)
	b.emit(notOurs...)
	return b.insns
}

// lookup emits R0 = bpf_map_lookup_elem(m, R10+fp).
func lookup(b *builder, m *ebpf.Map, fp int16) {
	b.emit(
		mapPtr(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(fp)),
		asm.FnMapLookupElem.Call(),
	)
}

func mapPtr(dst asm.Register, m *ebpf.Map) asm.Instruction {
	ins := asm.LoadMapPtr(dst, 0)
	if err := ins.AssociateMap(m); err != nil {
		panic(err) // LoadMapPtr is always a map load
	}
	return ins
}

// retTail is a tail that returns code.
func retTail(code int32) asm.Instructions {
	return asm.Instructions{asm.Mov.Imm(asm.R0, code), asm.Return()}
}

// xdpRedirectTail hands the frame to the AF_XDP socket of the queue it
// arrived on: bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS). The
// low bits of the flags are the return value when the map has no socket at
// that index, so a queue without a socket (vecnetd not started yet, or
// restarting) passes its frames to the kernel instead of dropping them.
func xdpRedirectTail(xsks *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		mapPtr(asm.R1, xsks),
		asm.LoadMem(asm.R2, rCtx, xdpMDRxQueueIndex, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
	}
}

// progKind is one of the three program types.
type progKind int

const (
	kindXDP progKind = iota
	kindTC
	kindSocket
)

func (k progKind) spec(m maps, ours, notOurs asm.Instructions) *ebpf.ProgramSpec {
	var (
		name string
		typ  ebpf.ProgramType
		acc  frameAccess
	)
	switch k {
	case kindXDP:
		name, typ = "vecnet_xdp", ebpf.XDP
		acc = directAccess{dataOff: xdpMDData, endOff: xdpMDDataEnd}
	case kindTC:
		name, typ = "vecnet_tc", ebpf.SchedCLS
		acc = directAccess{dataOff: skbData, endOff: skbDataEnd, pull: true}
	case kindSocket:
		name, typ = "vecnet_sock", ebpf.SocketFilter
		acc = skbLoadAccess{}
	default:
		panic(fmt.Sprintf("uplinkfilter: program kind %d", k))
	}
	return &ebpf.ProgramSpec{
		Name:         name,
		Type:         typ,
		Instructions: decision(acc, m, ours, notOurs),
		// No GPL-only helper is called; the string matters for nothing
		// else.
		License: "Dual MIT/GPL",
	}
}

// builder collects instructions and attaches a pending label to the next
// one.
type builder struct {
	insns asm.Instructions
	label string
}

func (b *builder) emit(insns ...asm.Instruction) {
	for _, ins := range insns {
		if b.label != "" {
			ins = ins.WithSymbol(b.label)
			b.label = ""
		}
		b.insns = append(b.insns, ins)
	}
}

// mark labels the next instruction emitted.
func (b *builder) mark(label string) {
	if b.label != "" {
		panic("uplinkfilter: two labels on one instruction: " + b.label + ", " + label)
	}
	b.label = label
}
