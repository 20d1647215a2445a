package adapter

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Manager runs discoverers, keeps the latest group per Key and hands out the
// full set on SyncCh.
//
// It writes on the leading edge: the first change after a quiet period is
// handed out at once; further changes within Interval of a hand-out are
// coalesced into one hand-out at the end of that interval. Nothing is handed
// out before every discoverer has sent its first (complete) set.
type Manager struct {
	logger   log.Logger
	interval time.Duration

	mtx     sync.Mutex
	groups  map[Key]*Group
	pending map[string]struct{} // providers that have not sent their first set

	trigger chan struct{} // 1-buffered: a pending hand-out
	syncCh  chan map[Key]*Group

	updates   atomic.Uint64 // group sets received from discoverers
	handedOut atomic.Uint64 // full sets sent on syncCh
}

// NewManager returns a Manager that coalesces updates arriving within
// interval of the previous hand-out. A nil logger logs nothing.
func NewManager(logger log.Logger, interval time.Duration) *Manager {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return &Manager{
		logger:   logger,
		interval: interval,
		groups:   map[Key]*Group{},
		pending:  map[string]struct{}{},
		trigger:  make(chan struct{}, 1),
		syncCh:   make(chan map[Key]*Group),
	}
}

// SyncCh delivers full sets of groups. Each map is the receiver's to keep;
// the groups in it must not be modified.
func (m *Manager) SyncCh() <-chan map[Key]*Group { return m.syncCh }

// Stats reports how many updates the discoverers sent and how many full sets
// were handed out; the difference is what coalescing saved.
func (m *Manager) Stats() (updates, handedOut uint64) {
	return m.updates.Load(), m.handedOut.Load()
}

// Run starts every provider and hands out full sets until ctx is cancelled.
// It returns once all providers have returned.
func (m *Manager) Run(ctx context.Context, providers map[string]Discoverer) {
	var wg sync.WaitGroup
	m.mtx.Lock()
	for name := range providers {
		m.pending[name] = struct{}{}
	}
	m.mtx.Unlock()

	for name, d := range providers {
		up := make(chan []*Group)
		wg.Add(2)
		go func() {
			defer wg.Done()
			d.Run(ctx, up)
		}()
		go func() {
			defer wg.Done()
			m.receive(ctx, name, up)
		}()
	}
	m.send(ctx)
	wg.Wait()
}

// receive applies the groups one provider sends.
func (m *Manager) receive(ctx context.Context, provider string, up <-chan []*Group) {
	for {
		select {
		case <-ctx.Done():
			return
		case groups := <-up:
			m.apply(provider, groups)
		}
	}
}

func (m *Manager) apply(provider string, groups []*Group) {
	m.updates.Add(1)
	m.mtx.Lock()
	for _, g := range groups {
		if g == nil {
			continue
		}
		k := Key{Provider: provider, Source: g.Source}
		if len(g.Targets) == 0 {
			delete(m.groups, k)
			continue
		}
		m.groups[k] = g
	}
	if _, first := m.pending[provider]; first {
		delete(m.pending, provider)
		level.Debug(m.logger).Log("msg", "Provider sent its initial set", "provider", provider, "groups", len(groups))
	}
	m.mtx.Unlock()

	select {
	case m.trigger <- struct{}{}:
	default: // a hand-out is already pending; it will include these groups
	}
}

// snapshot copies the current set, or reports false while some provider has
// not yet sent its first set.
func (m *Manager) snapshot() (map[Key]*Group, bool) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	if len(m.pending) > 0 {
		return nil, false
	}
	return maps.Clone(m.groups), true
}

// send hands out full sets: at once after a quiet period, otherwise at most
// once per interval.
func (m *Manager) send(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.trigger:
		}
		if wait := m.interval - time.Since(last); !last.IsZero() && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			// Everything that arrived while waiting is in this hand-out.
			select {
			case <-m.trigger:
			default:
			}
		}
		set, ok := m.snapshot()
		if !ok {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case m.syncCh <- set:
			m.handedOut.Add(1)
			last = time.Now()
		}
	}
}
