package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
// SHA-256, so a map lookup's timing depends on no byte of the secret itself,
// and a memory dump shows no usable id.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// session is one signed-in browser.
type session struct {
	csrf     string
	created  time.Time
	lastSeen time.Time
	flash    string // one message for the next page (after a POST)
}

// sessionStore keeps the sessions in memory: a restart signs everyone out,
// and a second replica does not know this one's sessions (route the console
// to one replica, or sign in again).
type sessionStore struct {
	mu     sync.Mutex
	now    func() time.Time
	maxAge time.Duration
	idle   time.Duration
	max    int
	m      map[[32]byte]*session
}

func newSessionStore(now func() time.Time, maxAge, idle time.Duration, max int) *sessionStore {
	return &sessionStore{now: now, maxAge: maxAge, idle: idle, max: max, m: map[[32]byte]*session{}}
}

func (s *sessionStore) expired(se *session, now time.Time) bool {
	return now.Sub(se.created) >= s.maxAge || now.Sub(se.lastSeen) >= s.idle
}

// create starts a session and returns its id (the cookie value).
func (s *sessionStore) create() (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var oldestKey [32]byte
	var oldest *session
	for k, se := range s.m {
		if s.expired(se, now) {
			delete(s.m, k)
			continue
		}
		if oldest == nil || se.created.Before(oldest.created) {
			oldestKey, oldest = k, se
		}
	}
	if oldest != nil && len(s.m) >= s.max {
		delete(s.m, oldestKey)
	}
	id := randomToken()
	se := &session{csrf: randomToken(), created: now, lastSeen: now}
	s.m[digest(id)] = se
	return id, se
}

// get returns the live session for id and marks it used; an expired one is
// removed.
func (s *sessionStore) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := digest(id)
	se, ok := s.m[k]
	if !ok {
		return nil, false
	}
	now := s.now()
	if s.expired(se, now) {
		delete(s.m, k)
		return nil, false
	}
	se.lastSeen = now
	return se, true
}

// takeFlash returns and clears the session's message.
func (s *sessionStore) takeFlash(se *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := se.flash
	se.flash = ""
	return f
}

func (s *sessionStore) setFlash(se *session, msg string) {
	s.mu.Lock()
	se.flash = msg
	s.mu.Unlock()
}

func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	delete(s.m, digest(id))
	s.mu.Unlock()
}

// failureLimiter counts failed sign-ins per client and in total within a
// sliding window. A client over its limit, or everyone when the total is
// over ten times that (many addresses guessing together), is refused
// without the token being checked until the window has passed.
type failureLimiter struct {
	mu     sync.Mutex
	now    func() time.Time
	limit  int
	window time.Duration
	per    map[string][]time.Time
	all    []time.Time
}

func newFailureLimiter(now func() time.Time, limit int, window time.Duration) *failureLimiter {
	return &failureLimiter{now: now, limit: limit, window: window, per: map[string][]time.Time{}}
}

func (l *failureLimiter) prune(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	return ts[i:]
}

// reserve checks and counts one sign-in attempt of client in one step:
// when client may try now, the attempt is counted as failed at once — before
// its token or code is compared — and release takes that count back (call
// it when the attempt succeeds; a wrong one keeps it). Otherwise ok is false
// and wait says how long to wait. As check and count are one step under the
// lock, attempts sent at the same time see each other: no more than limit
// attempts of one client are compared within the window.
func (l *failureLimiter) reserve(client string) (release func(), wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.all = l.prune(l.all, now)
	ts := l.prune(l.per[client], now)
	switch {
	case len(ts) >= l.limit:
		l.per[client] = ts
		return nil, l.window - now.Sub(ts[0]), false
	case len(ts) > 0 && len(l.all) >= 10*l.limit:
		// Under a wide attack an address that failed even once waits; one
		// that has not failed still signs in, so failures from other
		// addresses cannot lock the admins out.
		l.per[client] = ts
		return nil, l.window - now.Sub(l.all[0]), false
	}
	l.per[client] = append(ts, now)
	l.all = append(l.all, now)
	if len(l.per) > 10000 { // bound the memory of a scan from many addresses
		for k, kts := range l.per {
			if len(l.prune(kts, now)) == 0 {
				delete(l.per, k)
			}
		}
	}
	var once sync.Once
	return func() { once.Do(func() { l.unreserve(client, now) }) }, 0, true
}

// unreserve takes back one attempt of client counted at t (if the window
// has not dropped it already).
func (l *failureLimiter) unreserve(client string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ts := removeLast(l.per[client], t); len(ts) == 0 {
		delete(l.per, client)
	} else {
		l.per[client] = ts
	}
	l.all = removeLast(l.all, t)
}

// removeLast removes the last element of ts equal to t.
func removeLast(ts []time.Time, t time.Time) []time.Time {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(t) {
			return append(ts[:i], ts[i+1:]...)
		}
	}
	return ts
}

// codeStore holds one-time sign-in codes (the demo's sign-in link).
type codeStore struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[[32]byte]time.Time // digest → expiry
}

func newCodeStore(now func() time.Time) *codeStore {
	return &codeStore{now: now, m: map[[32]byte]time.Time{}}
}

func (s *codeStore) issue(ttl time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, exp := range s.m {
		if !now.Before(exp) {
			delete(s.m, k)
		}
	}
	code := randomToken()
	s.m[digest(code)] = now.Add(ttl)
	return code
}

// redeem consumes the code: true once, while it has not expired.
func (s *codeStore) redeem(code string) bool {
	if code == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := digest(code)
	exp, ok := s.m[k]
	delete(s.m, k)
	return ok && s.now().Before(exp)
}
