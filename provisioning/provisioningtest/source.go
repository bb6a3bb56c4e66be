package provisioningtest

import (
	"cmp"
	"context"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
)

// Source is an in-memory Personio: people by id, model.ErrPersonNotFound for
// the rest. ConfirmDeleted agrees with GetEmployee unless a person is
// marked with HideFromGet (the first read misses a person who exists).
type Source struct {
	mu     sync.Mutex
	people map[string]model.Employee
	hidden map[string]bool
	err    error
}

// NewSource returns a source holding emps.
func NewSource(emps ...model.Employee) *Source {
	s := &Source{people: map[string]model.Employee{}, hidden: map[string]bool{}}
	for _, e := range emps {
		s.people[e.PersonID] = e
	}
	return s
}

// Set adds or replaces a person.
func (s *Source) Set(e model.Employee) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.people[e.PersonID] = e
}

// Remove deletes a person (as deleting them in Personio does).
func (s *Source) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.people, id)
}

// HideFromGet makes GetEmployee answer not found for an existing person
// (the v1 404 that ConfirmDeleted's second read contradicts); false undoes it.
func (s *Source) HideFromGet(id string, hide bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hidden[id] = hide
}

// Fail makes every read fail with err until Fail(nil).
func (s *Source) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// GetEmployee reads one person.
func (s *Source) GetEmployee(_ context.Context, id string) (model.Employee, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return model.Employee{}, s.err
	}
	e, ok := s.people[id]
	if !ok || s.hidden[id] {
		return model.Employee{}, fmt.Errorf("personio: get employee %s: %w", id, model.ErrPersonNotFound)
	}
	return e, nil
}

// ConfirmDeleted is the second read: true only when the person is absent.
func (s *Source) ConfirmDeleted(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false, s.err
	}
	if id == "" || strings.ContainsAny(id, "/?#") {
		return false, fmt.Errorf("personio: confirm deletion: invalid person id %q", id)
	}
	_, ok := s.people[id]
	return !ok, nil
}

// ListEmployees returns everyone, ordered by person id.
func (s *Source) ListEmployees(context.Context) ([]model.Employee, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return slices.SortedFunc(maps.Values(s.people), func(a, b model.Employee) int { return cmp.Compare(a.PersonID, b.PersonID) }), nil
}

var _ provisioning.Source = (*Source)(nil)

// Queue records what the engine and the syncer enqueue and schedule: a
// provisioning.Enqueuer and provisioning.Scheduler without NATS.
type Queue struct {
	mu        sync.Mutex
	enqueued  []string
	schedules map[string]time.Time
}

// Enqueue records the person.
func (q *Queue) Enqueue(_ context.Context, personID, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.enqueued = append(q.enqueued, personID)
	return nil
}

// Schedule books (or moves) the person's wake-up.
func (q *Queue) Schedule(_ context.Context, personID string, at time.Time, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.schedules == nil {
		q.schedules = map[string]time.Time{}
	}
	q.schedules[personID] = at
	return nil
}

// CancelSchedule drops the person's wake-up.
func (q *Queue) CancelSchedule(_ context.Context, personID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.schedules, personID)
	return nil
}

// Enqueued returns the people enqueued so far, in order.
func (q *Queue) Enqueued() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.enqueued)
}

// Scheduled returns the person's booked wake-up (false when none).
func (q *Queue) Scheduled(personID string) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	at, ok := q.schedules[personID]
	return at, ok
}

var (
	_ provisioning.Enqueuer  = (*Queue)(nil)
	_ provisioning.Scheduler = (*Queue)(nil)
)
