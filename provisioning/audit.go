package provisioning

import (
	"context"
	"encoding/json"
	"time"
)

// Audit results.
const (
	ResultPlanned = "planned" // computed but not applied (dry run)
	ResultApplied = "applied"
	ResultSkipped = "skipped"
	ResultFailed  = "failed"
	ResultHeld    = "held" // destructive, waiting for approval (safeguard)
)

// AuditRecord is one entry of the audit log: one change for one person and
// what became of it. Records go to the structured log and to the durable
// audit stream (`personio-entra audit --employee ID`).
type AuditRecord struct {
	Time     time.Time `json:"time"`
	PersonID string    `json:"person_id"`
	Trigger  string    `json:"trigger"`
	Phase    string    `json:"phase,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	UserID   string    `json:"user_id,omitempty"`
	UPN      string    `json:"user_principal_name,omitempty"`
	Change   Change    `json:"change"`
	Summary  string    `json:"summary"`
	Result   string    `json:"result"`
	Note     string    `json:"note,omitempty"`
	Error    string    `json:"error,omitempty"`
	DryRun   bool      `json:"dry_run,omitempty"`
}

func auditRecord(now time.Time, trigger string, p Plan, c Change, result, note string, err error, dry bool) AuditRecord {
	return AuditRecord{
		Time: now.UTC(), PersonID: p.PersonID, Trigger: trigger, Phase: string(p.Phase), Reason: p.Reason,
		UserID: p.UserID, UPN: p.UPN, Change: c, Summary: c.String(), Result: result, Note: note,
		Error: errString(err), DryRun: dry,
	}
}

func (e *Engine) audit(ctx context.Context, rec AuditRecord) {
	if e.cfg.Audit == nil {
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		e.log.Error("encode audit record", "err", err)
		return
	}
	// The audit write must not be lost because the reconcile's context ends.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.cfg.Audit.AppendAudit(actx, rec.PersonID, b); err != nil {
		auditFailures.Inc()
		e.log.Error("write audit record", "person_id", rec.PersonID, "err", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
