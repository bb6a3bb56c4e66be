package model

import "slices"

// The Personio webhook events about people and employments
// (https://developer.personio.de/docs/webhooks). A delivery carries only ids;
// the product re-reads the person for every one of them.
const (
	EventPersonCreated        = "person.created"
	EventPersonUpdated        = "person.updated"
	EventPersonDeleted        = "person.deleted"
	EventEmploymentCreated    = "employment.created"
	EventEmploymentUpdated    = "employment.updated"
	EventEmploymentDeleted    = "employment.deleted"
	EventEmploymentStarted    = "employment.started"
	EventEmploymentTerminated = "employment.terminated"
	// EventEmploymentCostCenters is sent when only the cost centres of an
	// employment change.
	EventEmploymentCostCenters = "employment.updated.cost-centers"
)

// PersonEvents name the person in their payload.
var PersonEvents = []string{EventPersonCreated, EventPersonUpdated, EventPersonDeleted}

// EmploymentEvents name an employment (and usually its person).
var EmploymentEvents = []string{
	EventEmploymentCreated, EventEmploymentUpdated, EventEmploymentDeleted,
	EventEmploymentStarted, EventEmploymentTerminated, EventEmploymentCostCenters,
}

// SubscribedEvents are the events the product registers its webhook for:
// every person and employment event, including the date-driven
// employment.started and employment.terminated.
var SubscribedEvents = []string{
	EventPersonCreated, EventPersonUpdated, EventPersonDeleted,
	EventEmploymentCreated, EventEmploymentUpdated, EventEmploymentDeleted,
	EventEmploymentStarted, EventEmploymentTerminated,
}

// IsPersonEvent reports whether name is a person event.
func IsPersonEvent(name string) bool { return slices.Contains(PersonEvents, name) }

// IsEmploymentEvent reports whether name is an employment event.
func IsEmploymentEvent(name string) bool { return slices.Contains(EmploymentEvents, name) }
