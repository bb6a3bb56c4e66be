//go:build !unix

package queue

// lockStore is a no-op where flock is unavailable.
func lockStore(string) (func(), error) { return func() {}, nil }
