package provisioning

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the engine (README "Operations"). No per-person labels.
var (
	reconcilesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_reconciles_total",
		Help: "Reconciles of one person by outcome (success, no_change, error, permanent_error).",
	}, []string{"outcome"})
	reconcileDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "personio_entra_reconcile_duration_seconds",
		Help:    "Duration of one person's reconcile, Personio and Graph calls included.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"outcome"})
	changesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_changes_total",
		Help: "Directory changes by kind and result (applied, failed, skipped, planned).",
	}, []string{"kind", "result"})
	auditFailures = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_audit_write_failures_total",
		Help: "Audit records that could not be written to the audit stream (they are still logged).",
	})
	fullSyncDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "personio_entra_full_sync_duration_seconds",
		Help:    "Duration of a full sync (reads and planning; the drifting people are then reconciled by the workers).",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800},
	})
	fullSyncRuns = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_full_sync_runs_total",
		Help: "Full syncs by kind (complete, incremental) and outcome (success, error, guarded).",
	}, []string{"kind", "outcome"})
	fullSyncDrift = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "personio_entra_full_sync_drift_employees",
		Help: "People whose Entra state differed from the desired state in the last full sync.",
	})
	fullSyncLastSuccess = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "personio_entra_full_sync_last_success_timestamp_seconds",
		Help: "Unix time of the last successful full sync.",
	})
	guardTrips = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_guard_trips_total",
		Help: "Times the safeguard held destructive changes for approval (any trigger: webhook, schedule, sync, admin).",
	})
	guardHeldPeople = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_guard_held_people_total",
		Help: "People whose destructive changes the safeguard held for approval.",
	})
	budgetUsed = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "personio_entra_guard_budget_used_people",
		Help: "People who lost access within the current safeguard window (GUARD_WINDOW), as last seen by this process.",
	})
	unownedAccounts = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_unowned_accounts_skipped_total",
		Help: "Times an account whose employeeId Personio does not know, and that personio-entra does not own, was left alone.",
	})
	unownedGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "personio_entra_unowned_accounts",
		Help: "Accounts carrying an employeeId Personio does not know that personio-entra does not own (last complete sync).",
	})
	managerReleases = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_manager_waiters_released_total",
		Help: "Reports queued at once because their manager's account was created or adopted.",
	})
	sourceCollapsed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_source_collapsed_total",
		Help: "Complete syncs in which Personio returned no people, or far fewer than the owned accounts; nothing destructive was applied.",
	})
	pendingApprovals = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "personio_entra_pending_approvals",
		Help: "Guarded change sets waiting for `personio-entra approve`.",
	})
)
