package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Ownership records which Entra accounts personio-entra owns: the ones it
// created and the ones it adopted because they matched a Personio person
// through the configured matching keys. Only owned accounts ever lose
// access; an account that merely carries an employeeId Personio does not
// know (set by another HR system, an on-premises sync or by hand) is
// reported and left alone.
//
// The records live in the state bucket (JetStream KV, replicated like the
// work queue) under "owned.<object id>", not in a directory extension
// attribute: that needs no extra Graph permission or schema registration, no
// extra write per account, and losing the bucket fails safe (nothing is
// owned, so nothing is disabled until people are matched again).
type Ownership struct {
	kv KV

	mu      sync.Mutex
	known   map[string]bool // object ids known to be owned
	count   int
	countAt time.Time
}

// OwnershipRecord is one owned account.
type OwnershipRecord struct {
	UserID   string    `json:"user_id"`
	PersonID string    `json:"person_id"`
	UPN      string    `json:"user_principal_name"`
	How      string    `json:"how"` // created or adopted
	Since    time.Time `json:"since"`
}

const ownedPrefix = "owned."

// countTTL bounds how stale the owned-account count (the base of the
// safeguard's percentage) may be.
const countTTL = 5 * time.Minute

func newOwnership(kv KV) *Ownership { return &Ownership{kv: kv, known: map[string]bool{}} }

func ownedKey(userID string) (string, error) {
	if userID == "" || strings.ContainsAny(userID, ". *>\t\r\n") {
		return "", fmt.Errorf("ownership: invalid object id %q", userID)
	}
	return ownedPrefix + userID, nil
}

// Owns reports whether the account is owned.
func (o *Ownership) Owns(ctx context.Context, userID string) (bool, error) {
	o.mu.Lock()
	if o.known[userID] {
		o.mu.Unlock()
		return true, nil
	}
	o.mu.Unlock()
	key, err := ownedKey(userID)
	if err != nil {
		return false, err
	}
	_, _, err = o.kv.Get(ctx, key)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ownership of %s: %w", userID, err)
	}
	o.mu.Lock()
	o.known[userID] = true
	o.mu.Unlock()
	return true, nil
}

// Record stores that the account is owned (created or adopted).
func (o *Ownership) Record(ctx context.Context, rec OwnershipRecord) error {
	key, err := ownedKey(rec.UserID)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(rec)
	if err := o.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("record ownership of %s: %w", rec.UPN, err)
	}
	o.mu.Lock()
	if !o.known[rec.UserID] {
		o.known[rec.UserID] = true
		o.count++
	}
	o.mu.Unlock()
	return nil
}

// All returns the object ids of every owned account.
func (o *Ownership) All(ctx context.Context) (map[string]bool, error) {
	keys, err := o.kv.Keys(ctx, ownedPrefix)
	if err != nil {
		return nil, fmt.Errorf("list owned accounts: %w", err)
	}
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[strings.TrimPrefix(k, ownedPrefix)] = true
	}
	o.mu.Lock()
	o.count, o.countAt = len(out), time.Now()
	o.mu.Unlock()
	return out, nil
}

// Count is the number of owned accounts (cached for a few minutes).
func (o *Ownership) Count(ctx context.Context) (int, error) {
	o.mu.Lock()
	if !o.countAt.IsZero() && time.Since(o.countAt) < countTTL {
		n := o.count
		o.mu.Unlock()
		return n, nil
	}
	o.mu.Unlock()
	all, err := o.All(ctx)
	return len(all), err
}
