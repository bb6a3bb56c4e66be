package provisioning

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
)

// MemKV is an in-process KV for engines without a JetStream bucket (unit
// tests, read-only commands). Its state lives and dies with the process, so
// the product itself always runs with the replicated bucket.
type MemKV struct {
	mu   sync.Mutex
	rev  uint64
	data map[string]memEntry
}

type memEntry struct {
	value []byte
	rev   uint64
}

// ErrRevisionMismatch is returned by MemKV when a compare-and-set loses.
var ErrRevisionMismatch = errors.New("kv: wrong last revision")

// NewMemKV returns an empty in-process KV.
func NewMemKV() *MemKV { return &MemKV{data: map[string]memEntry{}} }

func (m *MemKV) Get(_ context.Context, key string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.data[key]
	if !ok {
		return nil, 0, ErrKeyNotFound
	}
	return append([]byte(nil), e.value...), e.rev, nil
}

func (m *MemKV) Create(_ context.Context, key string, value []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[key]; ok {
		return 0, ErrRevisionMismatch
	}
	m.rev++
	m.data[key] = memEntry{append([]byte(nil), value...), m.rev}
	return m.rev, nil
}

func (m *MemKV) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.data[key]
	if !ok || e.rev != rev {
		return 0, ErrRevisionMismatch
	}
	m.rev++
	m.data[key] = memEntry{append([]byte(nil), value...), m.rev}
	return m.rev, nil
}

func (m *MemKV) Put(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	m.data[key] = memEntry{append([]byte(nil), value...), m.rev}
	return nil
}

func (m *MemKV) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, key)
	return nil
}

func (m *MemKV) Keys(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}
