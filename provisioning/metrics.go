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
		Help: "Full syncs whose destructive changes exceeded the threshold and now wait for approval.",
	})
	pendingApprovals = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "personio_entra_pending_approvals",
		Help: "Guarded change sets waiting for `personio-entra approve`.",
	})
)
