// Package worker runs the dataplane's packet loops: one goroutine per
// worker, locked to an OS thread, owning a buffer pool, a graph context and
// a set of rx queues.
//
// Polling is adaptive: while packets keep arriving the worker polls its
// queues back to back (no syscall to wait, no wakeup latency); after
// SpinDuration without a packet it sleeps in epoll_wait until a queue is
// readable. On a machine with few cores a long spin steals CPU from the
// very pods whose packets we wait for, so the default spin is short.
package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/dataplane/graph"
	"github.com/vecnet/vecnet/pkg/dataplane/node"
	"github.com/vecnet/vecnet/pkg/dataplane/tables"
	"golang.org/x/sys/unix"
)

// Config sizes a worker.
type Config struct {
	SmallBuffers int
	LargeBuffers int
	SpinDuration time.Duration
}

// DefaultConfig is sized for a node with a few hundred pods: 16 Ki small and
// 64 large buffers are ~41 MiB per worker; a worker holds at most a few
// frames' worth of packets at once.
var DefaultConfig = Config{SmallBuffers: 16384, LargeBuffers: 64, SpinDuration: 50 * time.Microsecond}

// Worker is one packet loop.
type Worker struct {
	ID    int
	Ctx   *graph.Context
	cfg   Config
	tabs  *tables.Writer
	nodes *node.Nodes

	epfd, evfd int
	mu         sync.Mutex // serialises SetQueues and SetUplinkQueues
	registered map[int]bool
	tunFDs     []int
	uplinkFDs  []int

	stop  atomic.Bool
	epoch atomic.Uint64 // loop iterations, for quiescence
	done  chan struct{}
}

// New creates worker id over graph g.
func New(id int, g *graph.Graph, nodes *node.Nodes, tabs *tables.Writer, cfg Config) (*Worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("worker %d: epoll: %w", id, err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("worker %d: eventfd: %w", id, err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("worker %d: epoll add eventfd: %w", id, err)
	}
	pool := buffer.NewPool(cfg.SmallBuffers, cfg.LargeBuffers)
	return &Worker{
		ID:         id,
		Ctx:        graph.NewContext(g, id, pool),
		cfg:        cfg,
		tabs:       tabs,
		nodes:      nodes,
		epfd:       epfd,
		evfd:       evfd,
		registered: map[int]bool{},
		done:       make(chan struct{}),
	}, nil
}

// SetQueues replaces the worker's rx queues. It returns once the worker can
// no longer be reading a queue that was removed, so the caller may close
// removed descriptors right after.
func (w *Worker) SetQueues(qs []node.RxQueue) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tunFDs = w.tunFDs[:0]
	for _, q := range qs {
		w.tunFDs = append(w.tunFDs, q.FD)
	}
	err := w.syncEpoll()
	w.nodes.TunInput.SetQueues(w.ID, qs)
	w.Quiesce()
	return err
}

// SetUplinkQueues replaces the uplink queues the worker receives from,
// with the same guarantee as SetQueues.
func (w *Worker) SetUplinkQueues(qs []node.UplinkRxQueue) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.uplinkFDs = w.uplinkFDs[:0]
	for _, q := range qs {
		w.uplinkFDs = append(w.uplinkFDs, q.Q.FD())
	}
	err := w.syncEpoll()
	w.nodes.UplinkInput.SetQueues(w.ID, qs)
	w.Quiesce()
	return err
}

// syncEpoll makes the epoll set equal to the tun and uplink descriptors.
func (w *Worker) syncEpoll() error {
	want := map[int]bool{}
	var errs []error
	for _, fd := range append(w.tunFDs[:len(w.tunFDs):len(w.tunFDs)], w.uplinkFDs...) {
		want[fd] = true
		if !w.registered[fd] {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
			if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				errs = append(errs, fmt.Errorf("epoll add fd %d: %w", fd, err))
				continue
			}
			w.registered[fd] = true
		}
	}
	for fd := range w.registered {
		if !want[fd] {
			_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			delete(w.registered, fd)
		}
	}
	return errors.Join(errs...)
}

// Quiesce waits until the worker has started a new loop iteration, i.e. it
// has dropped every reference to the queue list and table snapshot it held
// when Quiesce was called.
func (w *Worker) Quiesce() {
	start := w.epoch.Load()
	for i := 0; ; i++ {
		select {
		case <-w.done:
			return
		default:
		}
		if w.epoch.Load() >= start+2 {
			return
		}
		w.wake()
		time.Sleep(time.Duration(min(i+1, 100)) * 10 * time.Microsecond)
	}
}

func (w *Worker) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(w.evfd, one[:])
}

// Run is the packet loop. It returns after Stop.
func (w *Worker) Run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(w.done)
	defer w.nodes.TunInput.Release(w.ID)
	slog.Info("worker started", "worker", w.ID)
	c := w.Ctx
	events := make([]unix.EpollEvent, 64)
	var drain [8]byte
	poll := w.nodes.TunInput.Poll
	in := w.nodes.TunInputIndex
	upoll := w.nodes.UplinkInput.Poll
	uin := w.nodes.UplinkInputIndex
	lastPacket := time.Now()
	for !w.stop.Load() {
		w.epoch.Add(1)
		c.Tables = w.tabs.Snapshot()
		c.Now = time.Now()
		got := c.Poll(in, poll)
		if len(w.nodes.UplinkInput.Queues(w.ID)) > 0 {
			got += c.Poll(uin, upoll)
		}
		if got > 0 {
			lastPacket = c.Now
			continue
		}
		if c.Now.Sub(lastPacket) < w.cfg.SpinDuration {
			continue
		}
		// Drop the snapshot while asleep so an old table version can be
		// collected.
		c.Tables = nil
		n, err := unix.EpollWait(w.epfd, events, 100)
		if err != nil && err != unix.EINTR {
			slog.Error("epoll_wait failed", "worker", w.ID, "err", err)
			time.Sleep(10 * time.Millisecond)
		}
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == w.evfd {
				_, _ = unix.Read(w.evfd, drain[:])
			}
		}
		lastPacket = time.Now()
	}
	slog.Info("worker stopped", "worker", w.ID)
}

// Stop ends Run and waits for it.
func (w *Worker) Stop() {
	w.stop.Store(true)
	w.wake()
	<-w.done
	unix.Close(w.epfd)
	unix.Close(w.evfd)
}
