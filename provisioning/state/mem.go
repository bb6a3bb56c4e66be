// Package state is the contract of the small revisioned key-value store the
// engine keeps its durable state in (ownership records, the safeguard's
// budget and approvals, the sync state and lease), and an in-process
// implementation of it. The product's store is a JetStream KV bucket
// (queue.StateStore), replicated like the work queue.
package state

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
)

// KV is a small revisioned key-value store. Get returns an error matching
// ErrKeyNotFound (errors.Is) for an absent key, and any other error only when
// the store could not be read; Create fails when the key exists and Update
// when its revision moved (compare-and-set).
type KV interface {
	Get(ctx context.Context, key string) (value []byte, revision uint64, err error)
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// ErrKeyNotFound is returned by KV.Get for absent keys.
var ErrKeyNotFound = errors.New("key not found")

// Mem is an in-process KV for engines without a JetStream bucket (unit
// tests, read-only commands). Its state lives and dies with the process, so
// the product itself always runs with the replicated bucket.
type Mem struct {
	mu   sync.Mutex
	rev  uint64
	data map[string]memEntry
}

type memEntry struct {
	value []byte
	rev   uint64
}

// ErrRevisionMismatch is returned by Mem when a compare-and-set loses.
var ErrRevisionMismatch = errors.New("kv: wrong last revision")

// NewMem returns an empty in-process KV.
func NewMem() *Mem { return &Mem{data: map[string]memEntry{}} }

func (m *Mem) Get(_ context.Context, key string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.data[key]
	if !ok {
		return nil, 0, ErrKeyNotFound
	}
	return append([]byte(nil), e.value...), e.rev, nil
}

func (m *Mem) Create(_ context.Context, key string, value []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[key]; ok {
		return 0, ErrRevisionMismatch
	}
	m.rev++
	m.data[key] = memEntry{append([]byte(nil), value...), m.rev}
	return m.rev, nil
}

func (m *Mem) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
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

func (m *Mem) Put(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	m.data[key] = memEntry{append([]byte(nil), value...), m.rev}
	return nil
}

func (m *Mem) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, key)
	return nil
}

// DeleteRevision deletes key only while its revision is rev (compare-and-delete).
func (m *Mem) DeleteRevision(_ context.Context, key string, rev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.data[key]; !ok || e.rev != rev {
		return ErrRevisionMismatch
	}
	delete(m.data, key)
	return nil
}

func (m *Mem) Keys(_ context.Context, prefix string) ([]string, error) {
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
