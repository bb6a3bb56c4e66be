package queue

import (
	"context"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personio-entra/personio-entra/provisioning/state"
)

// StateBucket is the KV bucket of the engine's durable state.
const StateBucket = "personio_entra_state"

// StateStore is the engine's state store (state.KV) on a JetStream
// key-value bucket: ownership records, the safeguard's budget and held
// approvals, the sync state and lease. It is replicated like every stream,
// so any process can approve what another one held back. Get answers
// state.ErrKeyNotFound for an absent key and the JetStream error when the
// bucket could not be read.
type StateStore struct{ kv jetstream.KeyValue }

var _ state.KV = StateStore{}

// State opens (creating if needed) the state bucket.
func (q *Queue) State(ctx context.Context) (StateStore, error) {
	kv, err := q.KeyValue(ctx, StateBucket)
	if err != nil {
		return StateStore{}, err
	}
	return StateStore{kv}, nil
}

func (s StateStore) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, state.ErrKeyNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

func (s StateStore) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return s.kv.Create(ctx, key, value)
}

func (s StateStore) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return s.kv.Update(ctx, key, value, rev)
}

func (s StateStore) Put(ctx context.Context, key string, value []byte) error {
	_, err := s.kv.Put(ctx, key, value)
	return err
}

func (s StateStore) Delete(ctx context.Context, key string) error {
	err := s.kv.Delete(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// DeleteRevision deletes key only while its revision is rev (compare-and-delete).
func (s StateStore) DeleteRevision(ctx context.Context, key string, rev uint64) error {
	return s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
}

func (s StateStore) Keys(ctx context.Context, prefix string) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, prefix+">")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}
