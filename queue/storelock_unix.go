//go:build unix

package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockStore takes an exclusive lock on the store directory. nats-server does
// not lock its store, and two servers writing one store corrupt it, e.g. a
// CLI command started next to a running `run` with the same DATA_DIR. The
// lock is released by the returned function (and by the kernel at exit).
// A lock still held is retried for a moment: a server shut down in this
// process releases it asynchronously.
func lockStore(store string) (func(), error) {
	path := filepath.Join(store, "personio-entra.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is in use by another personio-entra process with an embedded NATS server; "+
					"stop it, use its admin API, or point NATS_URL at a shared NATS server", store)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
