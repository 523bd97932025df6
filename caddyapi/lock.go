package caddyapi

import (
	"context"
	"sync"
)

// instanceLocks maps the lock key of an admin endpoint to its lock, so that
// all Clients of one process that address the same Caddy share one lock.
var instanceLocks sync.Map

// instanceLock serialises the read-and-write rounds of Apply for one Caddy
// instance. It is a channel with room for one token, so a waiter can give up
// when its context ends.
//
// Two admin URLs that reach the same Caddy by different names, such as
// localhost:2019 and 127.0.0.1:2019, get different locks. Their writes
// cannot corrupt each other, because every write carries If-Match, but they
// can cause 412 retries.
type instanceLock chan struct{}

// lockFor returns the lock for key, creating it on first use.
func lockFor(key string) instanceLock {
	lock, _ := instanceLocks.LoadOrStore(key, make(instanceLock, 1))
	return lock.(instanceLock)
}

// acquire blocks until the lock is free or ctx ends, and returns ctx's error
// in the latter case.
func (l instanceLock) acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release frees the lock taken by acquire.
func (l instanceLock) release() {
	<-l
}
