package work

import "time"

// Notice is one notification to deliver: which event, about whom. It is
// the body of a notification message on the queue, so it never holds a
// secret: the day-one work says "issue and deliver the pass for person X
// starting on D", and the pass exists only inside the delivery.
type Notice struct {
	Event    string `json:"event"`
	PersonID string `json:"person_id,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	UPN      string `json:"user_principal_name,omitempty"`
	// StartDate (YYYY-MM-DD) names the start date of day-one work.
	StartDate string `json:"start_date,omitempty"`
	// ApprovalID, People and Reason describe held changes; Reason, Error
	// and Subject a dead letter.
	ApprovalID string    `json:"approval_id,omitempty"`
	People     int       `json:"people,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Error      string    `json:"error,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	Time       time.Time `json:"time"`
}
