package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"slices"
)

// Reports whose manager has no account yet wait for that account: the
// engine records them under "wait.manager.<manager person id>" in the state
// bucket (so the index survives restarts and is shared by every worker
// process), and when it creates or adopts the manager's account it queues
// them at once. The periodic retry (Config.ManagerRetry) stays as a
// backstop.
const waitPrefix = "wait.manager."

// waitForManager records that report waits for manager's account.
func (e *Engine) waitForManager(ctx context.Context, manager, report string) error {
	if !validKeyToken(manager) {
		return nil
	}
	key := waitPrefix + manager
	for range casAttempts {
		b, rev, err := e.cfg.State.Get(ctx, key)
		var reports []string
		switch {
		case errors.Is(err, ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("record that %s waits for manager %s: %w", report, manager, err)
		default:
			if err := json.Unmarshal(b, &reports); err != nil {
				return fmt.Errorf("decode waiters of %s: %w", manager, err)
			}
		}
		if slices.Contains(reports, report) {
			return nil
		}
		nb, _ := json.Marshal(append(reports, report))
		if rev == 0 {
			_, err = e.cfg.State.Create(ctx, key, nb)
		} else {
			_, err = e.cfg.State.Update(ctx, key, nb, rev)
		}
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("record that %s waits for manager %s: the index is contended", report, manager)
}

// releaseWaiters queues everyone waiting for manager's account, now that it
// exists. A failure is logged: the periodic retry still comes.
func (e *Engine) releaseWaiters(ctx context.Context, manager string) {
	if e.cfg.Enqueuer == nil || !validKeyToken(manager) {
		return
	}
	key := waitPrefix + manager
	b, _, err := e.cfg.State.Get(ctx, key)
	if errors.Is(err, ErrKeyNotFound) {
		return
	}
	if err != nil {
		e.log.Warn("read the reports waiting for this manager; they are retried later", "person_id", manager, "err", err)
		return
	}
	var reports []string
	if err := json.Unmarshal(b, &reports); err != nil {
		e.log.Warn("decode the reports waiting for this manager", "person_id", manager, "err", err)
	}
	for _, r := range reports {
		if err := e.cfg.Enqueuer.Enqueue(ctx, r, "manager-ready"); err != nil {
			e.log.Warn("queue a report whose manager's account now exists; it is retried later", "person_id", r, "manager_person_id", manager, "err", err)
			return
		}
	}
	if err := e.cfg.State.Delete(ctx, key); err != nil {
		e.log.Warn("clear the reports waiting for this manager", "person_id", manager, "err", err)
	}
	managerReleases.Add(float64(len(reports)))
}

func validKeyToken(s string) bool { return model.ValidPersonID(s) }
