package console

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/state"
)

// Store is where the console keeps what a sign-in leaves behind: the
// sessions, the failed sign-ins the limiter counts and the demo's one-time
// sign-in codes. The product passes its replicated JetStream state bucket
// (queue.StateStore), so every receiver replica knows every session and a
// restart signs nobody out; the console's unit tests use state.Mem.
//
// Get answers an error matching state.ErrKeyNotFound for an absent key and
// any other error only when the store could not be read. Create fails when
// the key exists; Update and DeleteRevision fail when the key's revision
// moved (compare-and-set), which is what makes the limiter's
// check-and-count and a code's single use hold across replicas. Delete of
// an absent key is no error.
type Store interface {
	Get(ctx context.Context, key string) (value []byte, revision uint64, err error)
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Delete(ctx context.Context, key string) error
	DeleteRevision(ctx context.Context, key string, revision uint64) error
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// Keys in the state bucket. Session ids and codes are never stored: their
// keys carry the hex SHA-256 of the secret (digest), so the bucket's
// contents do not let anyone sign in. Client addresses are hashed too (an
// IPv6 address has characters a key may not).
const (
	sessionPrefix  = "console.session."
	failurePrefix  = "console.signin.client."
	failuresAllKey = "console.signin.all"
	codePrefix     = "console.code."
)

func storeKey(prefix, secret string) string {
	d := digest(secret)
	return prefix + hex.EncodeToString(d[:])
}

const (
	// storeTimeout bounds one store operation: a sign-in or page waits no
	// longer than this for an unreachable bucket before it fails.
	storeTimeout = 5 * time.Second
	// casAttempts bounds the compare-and-set retries of one change. Each
	// lost round means another request's change won, so the limit is only
	// reached under far more concurrent sign-ins than an admin makes.
	casAttempts = 100
)

// errStoreUnavailable marks a failure to read or write the store: the
// console answers 503 and never signs anyone in without it.
var errStoreUnavailable = errors.New("the console's session store (the NATS state bucket) cannot be reached")

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", errStoreUnavailable, what, err)
}

func withStoreTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, storeTimeout)
}

// getJSON reads key into v; found is false for an absent key. A value that
// does not decode counts as absent (and is overwritten by the next change).
func getJSON(ctx context.Context, kv Store, key string, v any) (rev uint64, found bool, err error) {
	b, rev, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, state.ErrKeyNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, unavailable("read "+key, err)
	}
	if json.Unmarshal(b, v) != nil {
		return rev, false, nil
	}
	return rev, true, nil
}

// modify changes the JSON value at key with compare-and-set: it reads the
// value (the zero T when absent), lets change edit it, and writes it back
// only if nobody wrote the key in between; when someone did it reads again
// and calls change again (so change must set everything it reports from
// scratch each call). change returning false writes nothing.
func modify[T any](ctx context.Context, kv Store, key string, change func(v *T) bool) error {
	for range casAttempts {
		var v T
		rev, _, err := getJSON(ctx, kv, key, &v)
		if err != nil {
			return err
		}
		if !change(&v) {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("console: encode %s: %w", key, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return unavailable("write "+key, err)
		}
		// Lost the race (or the write failed): read again; a store that
		// cannot be read ends the loop above.
	}
	return unavailable("write "+key, errors.New("too many concurrent changes"))
}

func isNotFound(err error) bool { return errors.Is(err, state.ErrKeyNotFound) }

func jsonBytes(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("console: encode: %w", err)
	}
	return b, nil
}
