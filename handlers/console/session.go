package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// randomToken is 256 random bits, URL-safe base64 without padding.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (https://pkg.go.dev/crypto/rand#Read)
	return base64.RawURLEncoding.EncodeToString(b)
}

// digest keys the stores: a session id or sign-in code is looked up by its
// SHA-256, so the stored key depends on no usable byte of the secret, and a
// copy of the bucket shows no id that signs anyone in.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// touchEvery throttles the last-seen update: a page view writes the
// session's record at most once a minute (one KV write each time), so the
// idle limit counts from a last use up to a minute older than the real one.
const touchEvery = time.Minute

// sessionRecord is what the store keeps of one signed-in browser: no id
// (the key is its digest), only what the pages need.
type sessionRecord struct {
	CSRF     string    `json:"csrf"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	Flash    string    `json:"flash,omitempty"` // one message for the next page (after a POST)
}

// session is one signed-in browser as a request sees it.
type session struct {
	key string // the store key: sessionPrefix + hex digest of the id
	sessionRecord
}

// sessionStore keeps the sessions in the Store, so that every replica
// knows them and a restart keeps them. Absolute and idle expiry are checked
// on every read against the stored times, by whichever replica reads.
type sessionStore struct {
	kv     Store
	log    *slog.Logger
	now    func() time.Time
	maxAge time.Duration
	idle   time.Duration
	max    int
}

func newSessionStore(kv Store, log *slog.Logger, now func() time.Time, maxAge, idle time.Duration, max int) *sessionStore {
	return &sessionStore{kv: kv, log: log, now: now, maxAge: maxAge, idle: idle, max: max}
}

func (s *sessionStore) expired(se sessionRecord, now time.Time) bool {
	return now.Sub(se.Created) >= s.maxAge || now.Sub(se.LastSeen) >= s.idle
}

// create starts a session and returns its id (the cookie value). It first
// deletes the expired sessions and, when MaxSessions are live, the oldest.
func (s *sessionStore) create(ctx context.Context) (string, error) {
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	now := s.now()
	if err := s.sweep(ctx, now); err != nil {
		return "", err
	}
	id := randomToken()
	b, err := jsonBytes(sessionRecord{CSRF: randomToken(), Created: now, LastSeen: now})
	if err != nil {
		return "", err
	}
	if _, err := s.kv.Create(ctx, storeKey(sessionPrefix, id), b); err != nil {
		return "", unavailable("create session", err)
	}
	return id, nil
}

// sweep deletes expired sessions, and the oldest live ones beyond max-1
// (room for the one being created).
func (s *sessionStore) sweep(ctx context.Context, now time.Time) error {
	keys, err := s.kv.Keys(ctx, sessionPrefix)
	if err != nil {
		return unavailable("list sessions", err)
	}
	type live struct {
		key     string
		rev     uint64
		created time.Time
	}
	var all []live
	for _, k := range keys {
		var rec sessionRecord
		rev, found, err := getJSON(ctx, s.kv, k, &rec)
		if err != nil {
			return err
		}
		if rev == 0 {
			continue // gone since the listing
		}
		if !found || s.expired(rec, now) {
			_ = s.kv.DeleteRevision(ctx, k, rev) // a replica that changed it meanwhile decides again
			continue
		}
		all = append(all, live{k, rev, rec.Created})
	}
	if len(all) < s.max {
		return nil
	}
	slices.SortFunc(all, func(a, b live) int { return a.created.Compare(b.created) })
	for _, l := range all[:len(all)-s.max+1] {
		_ = s.kv.DeleteRevision(ctx, l.key, l.rev)
	}
	return nil
}

// get returns the live session for id (nil when there is none) and marks
// it used, at most once per touchEvery; an expired one is deleted. An error
// means the store could not be read: the caller fails closed.
func (s *sessionStore) get(ctx context.Context, id string) (*session, error) {
	if id == "" {
		return nil, nil
	}
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	se := &session{key: storeKey(sessionPrefix, id)}
	rev, found, err := getJSON(ctx, s.kv, se.key, &se.sessionRecord)
	if err != nil || rev == 0 {
		return nil, err
	}
	now := s.now()
	if !found || s.expired(se.sessionRecord, now) {
		if err := s.kv.DeleteRevision(ctx, se.key, rev); err != nil {
			s.log.Debug("console: deleting an expired session lost to another change", "err", err)
		}
		return nil, nil
	}
	if now.Sub(se.LastSeen) >= touchEvery {
		se.LastSeen = now
		b, err := jsonBytes(se.sessionRecord)
		if err == nil {
			// A lost compare-and-set means another request of the session
			// wrote it just now (touched it, or took its message): fine.
			_, err = s.kv.Update(ctx, se.key, b, rev)
		}
		if err != nil {
			s.log.Debug("console: session last-seen update not written", "err", err)
		}
	}
	return se, nil
}

// takeFlash returns and clears the session's message. A message that
// cannot be cleared is not shown (it shows on the next page instead).
func (s *sessionStore) takeFlash(ctx context.Context, se *session) string {
	if se.Flash == "" {
		return ""
	}
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	var msg string
	err := modify(ctx, s.kv, se.key, func(rec *sessionRecord) bool {
		msg = rec.Flash
		if rec.CSRF == "" || msg == "" { // ended meanwhile, or taken by another page
			return false
		}
		rec.Flash = ""
		return true
	})
	if err != nil {
		s.log.Warn("console: taking the session's message failed", "err", err)
		return ""
	}
	se.Flash = ""
	return msg
}

// setFlash leaves msg for the session's next page.
func (s *sessionStore) setFlash(ctx context.Context, se *session, msg string) {
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	err := modify(ctx, s.kv, se.key, func(rec *sessionRecord) bool {
		if rec.CSRF == "" { // ended meanwhile: never recreate it
			return false
		}
		rec.Flash = msg
		return true
	})
	if err != nil {
		s.log.Warn("console: keeping a message for the next page failed", "err", err)
	}
}

// delete ends the session id on every replica.
func (s *sessionStore) delete(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	if err := s.kv.Delete(ctx, storeKey(sessionPrefix, id)); err != nil {
		return unavailable("delete session", err)
	}
	return nil
}

// failureLimiter counts failed sign-ins per client and in total within a
// sliding window, in the Store so that a guesser rotating over replicas
// meets one limit. A client over its limit, or everyone who failed before
// when the total is over ten times that (many addresses guessing
// together), is refused without the token being checked until the window
// has passed. Times are Unix nanoseconds.
type failureLimiter struct {
	kv     Store
	log    *slog.Logger
	now    func() time.Time
	limit  int
	window time.Duration

	mu        sync.Mutex
	lastSweep time.Time // this replica's last sweep of stale per-client keys
}

func newFailureLimiter(kv Store, log *slog.Logger, now func() time.Time, limit int, window time.Duration) *failureLimiter {
	return &failureLimiter{kv: kv, log: log, now: now, limit: limit, window: window}
}

func (l *failureLimiter) prune(ts []int64, now int64) []int64 {
	i := 0
	for i < len(ts) && now-ts[i] >= int64(l.window) {
		i++
	}
	return ts[i:]
}

// reserve checks and counts one sign-in attempt of client in one step:
// when client may try now, the attempt is counted as failed at once — before
// its token or code is compared — and release takes that count back (call
// it when the attempt succeeds; a wrong one keeps it). Otherwise ok is false
// and wait says how long to wait. Check and count are one compare-and-set
// of the client's record: attempts sent at the same time, to this replica
// or another, see each other, so no more than limit attempts of one client
// are compared within the window. The total is a second compare-and-set;
// an attempt it refuses is taken back from the client's count. An error
// means the store could not be used: the caller refuses the sign-in.
func (l *failureLimiter) reserve(ctx context.Context, client string) (release func(), wait time.Duration, ok bool, err error) {
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	now := l.now().UnixNano()
	l.sweep(ctx)
	key := storeKey(failurePrefix, client)
	var had int
	var refused bool
	err = modify(ctx, l.kv, key, func(ts *[]int64) bool {
		*ts = l.prune(*ts, now)
		had, refused = len(*ts), len(*ts) >= l.limit
		if refused {
			wait = time.Duration(int64(l.window) - (now - (*ts)[0]))
			return false
		}
		*ts = append(*ts, now)
		return true
	})
	if err != nil || refused {
		return nil, wait, false, err
	}
	max := 10 * l.limit
	err = modify(ctx, l.kv, failuresAllKey, func(all *[]int64) bool {
		*all = l.prune(*all, now)
		// Under a wide attack an address that failed even once waits; one
		// that has not failed still signs in, so failures from other
		// addresses cannot lock the admins out.
		refused = had > 0 && len(*all) >= max
		if refused {
			wait = time.Duration(int64(l.window) - (now - (*all)[0]))
			return false
		}
		// Only the newest max times matter: with as many in the window the
		// oldest of them is when the total drops below the limit again.
		*all = append(*all, now)
		if len(*all) > max {
			*all = (*all)[len(*all)-max:]
		}
		return true
	})
	if err != nil || refused {
		l.unreserve(ctx, key, "", now)
		return nil, wait, false, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := withStoreTimeout(context.WithoutCancel(ctx))
			defer cancel()
			l.unreserve(ctx, key, failuresAllKey, now)
		})
	}, 0, true, nil
}

// unreserve takes back one attempt counted at t from the client's record
// (and from the total when allKey is set), if the window has not dropped
// it already. A failure leaves the attempt counted: the safe side.
func (l *failureLimiter) unreserve(ctx context.Context, key, allKey string, t int64) {
	for _, k := range []string{key, allKey} {
		if k == "" {
			continue
		}
		err := modify(ctx, l.kv, k, func(ts *[]int64) bool {
			i := slices.Index(*ts, t)
			if i < 0 {
				return false
			}
			*ts = slices.Delete(*ts, i, i+1)
			return true
		})
		if err != nil {
			l.log.Warn("console: giving back a sign-in attempt failed", "err", err)
		}
	}
}

// sweep deletes per-client records whose attempts have all left the
// window, at most once a minute per replica (a scan from many addresses
// leaves one record each).
func (l *failureLimiter) sweep(ctx context.Context) {
	l.mu.Lock()
	now := l.now()
	due := now.Sub(l.lastSweep) >= time.Minute
	if due {
		l.lastSweep = now
	}
	l.mu.Unlock()
	if !due {
		return
	}
	keys, err := l.kv.Keys(ctx, failurePrefix)
	if err != nil {
		l.log.Warn("console: listing failed sign-ins failed", "err", err)
		return
	}
	for _, k := range keys {
		var ts []int64
		rev, _, err := getJSON(ctx, l.kv, k, &ts)
		if err != nil {
			return
		}
		if rev != 0 && len(l.prune(ts, now.UnixNano())) == 0 {
			_ = l.kv.DeleteRevision(ctx, k, rev) // an attempt counted meanwhile keeps it
		}
	}
}

// codeStore holds one-time sign-in codes (the demo's sign-in link) in the
// Store: a code works once, on whichever replica is asked first.
type codeStore struct {
	kv  Store
	now func() time.Time
}

type codeRecord struct {
	Expires time.Time `json:"expires"`
}

func newCodeStore(kv Store, now func() time.Time) *codeStore {
	return &codeStore{kv: kv, now: now}
}

// issue stores a new code valid for ttl, first deleting expired ones.
func (s *codeStore) issue(ctx context.Context, ttl time.Duration) (string, error) {
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	now := s.now()
	keys, err := s.kv.Keys(ctx, codePrefix)
	if err != nil {
		return "", unavailable("list sign-in codes", err)
	}
	for _, k := range keys {
		var rec codeRecord
		if rev, _, err := getJSON(ctx, s.kv, k, &rec); err == nil && rev != 0 && !now.Before(rec.Expires) {
			_ = s.kv.DeleteRevision(ctx, k, rev)
		}
	}
	code := randomToken()
	b, err := jsonBytes(codeRecord{Expires: now.Add(ttl)})
	if err != nil {
		return "", err
	}
	if _, err := s.kv.Create(ctx, storeKey(codePrefix, code), b); err != nil {
		return "", unavailable("store sign-in code", err)
	}
	return code, nil
}

// redeem consumes the code: true once, while it has not expired. The code
// is deleted at the revision it was read at, so of two replicas redeeming
// it at the same time only one succeeds.
func (s *codeStore) redeem(ctx context.Context, code string) (bool, error) {
	if code == "" {
		return false, nil
	}
	ctx, cancel := withStoreTimeout(ctx)
	defer cancel()
	key := storeKey(codePrefix, code)
	var rec codeRecord
	rev, found, err := getJSON(ctx, s.kv, key, &rec)
	if err != nil || rev == 0 {
		return false, err
	}
	if err := s.kv.DeleteRevision(ctx, key, rev); err != nil {
		// Someone redeemed it first, or the store failed: tell which.
		if _, rev2, gerr := s.kv.Get(ctx, key); gerr != nil && !isNotFound(gerr) {
			return false, unavailable("consume sign-in code", gerr)
		} else if gerr == nil && rev2 == rev {
			return false, unavailable("consume sign-in code", err)
		}
		return false, nil
	}
	return found && s.now().Before(rec.Expires), nil
}
