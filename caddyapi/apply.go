package caddyapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// ApplyResult describes what Apply did.
type ApplyResult struct {
	// Written reports whether Apply changed Caddy's config. It is false when
	// the owned routes already equalled the specs.
	Written bool
	// Attempts is how many read-and-compare rounds Apply made: 1, plus one
	// for each 412 retry.
	Attempts int
	// Added, Updated and Removed are the ids of the owned routes that the
	// write created, changed and deleted, each sorted. They are empty when
	// nothing was written. A write that only moves the owned block in front
	// of the other routes has Written set and all three empty.
	Added, Updated, Removed []string
}

// Apply makes the owned routes of the managed routes array equal specs,
// and blocks until Caddy has loaded the result or Apply gives up.
//
// Each attempt reads the array and its Etag with one GET, computes the new
// array and, only if it differs from what was read, writes it with one
// PATCH (or PUT, when the "routes" key is missing) under If-Match. The owned
// routes are written sorted by ID as one block before the first route that
// is not owned. Routes without the prefix are kept unchanged and in order.
// A route that specs leave out is deleted, and one that is already missing
// counts as deleted. When another client changed the config between the
// read and the write, Caddy responds with 412, and Apply waits with exponential
// backoff and tries again, up to Config.MaxAttempts times in all.
//
// Specs are validated first, and an invalid one fails the whole call with a
// [*SpecError] before any request is sent. Among the Clients of one process
// that share an admin URL, only one Apply runs at a time, and a waiting
// Apply returns ctx's error if ctx ends first.
func (c *Client) Apply(ctx context.Context, specs []RouteSpec) (ApplyResult, error) {
	// build the desired routes
	normalized, err := normalizeSpecs(c.cfg.IDPrefix, specs)
	if err != nil {
		return ApplyResult{}, err
	}
	desired := make([]route, 0, len(normalized))
	for _, spec := range normalized {
		desired = append(desired, buildRoute(spec, c.cfg.Proxy))
	}

	// serialise with other writers of this Caddy instance
	if err := c.lock.acquire(ctx); err != nil {
		return ApplyResult{}, fmt.Errorf("waiting for the write lock of %s: %w", c.cfg.AdminURL, err)
	}
	defer c.lock.release()

	var result ApplyResult
	for attempt := 1; ; attempt++ {
		result.Attempts = attempt

		// read and compare
		snap, err := c.read(ctx)
		if err != nil {
			return result, err
		}
		if c.afterRead != nil {
			c.afterRead(attempt)
		}

		p, err := planRoutes(snap.routes, desired, c.cfg.IDPrefix)
		if err != nil {
			return result, err
		}
		if !p.changed {
			return result, nil
		}

		// write under If-Match
		err = c.write(ctx, snap, p.routes)
		if err == nil {
			adminWritesTotal.Inc()
			result.Written = true
			result.Added, result.Updated, result.Removed = p.added, p.updated, p.removed
			c.logChanges(attempt, p)
			return result, nil
		}
		if !errors.Is(err, ErrConflict) {
			return result, err
		}
		adminConflictsTotal.Inc()

		// give up, or back off and read again
		if attempt >= c.cfg.MaxAttempts {
			return result, c.conflictError(err, attempt)
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "caddy config changed between read and write, retrying",
			slog.Int(logKeyAttempt, attempt), slog.Any(logKeyErr, err))
		if err := sleep(ctx, c.retryDelay(attempt)); err != nil {
			return result, fmt.Errorf("waiting to retry the write to %s: %w", c.cfg.AdminURL, err)
		}
	}
}

// Owned returns the owned routes currently in the managed routes array,
// decoded into RouteSpecs and sorted by ID, with one GET. Hosts and dials
// are returned as Caddy stores them, sorted.
func (c *Client) Owned(ctx context.Context) ([]RouteSpec, error) {
	snap, err := c.read(ctx)
	if err != nil {
		return nil, err
	}

	var specs []RouteSpec
	for _, raw := range snap.routes {
		id, owned := ownedID(raw, c.cfg.IDPrefix)
		if !owned {
			continue
		}

		spec, err := decodeOwnedRoute(raw)
		if err != nil {
			return nil, fmt.Errorf("reading route %q from %s: %w", id, c.cfg.AdminURL, err)
		}
		specs = append(specs, spec)
	}
	slices.SortFunc(specs, func(a, b RouteSpec) int { return strings.Compare(a.ID, b.ID) })

	return specs, nil
}

// Check returns nil when the admin API responds and the managed routes array
// can be read: the server or subroute exists. A server or subroute without
// a "routes" key passes, because Apply creates the key. It sends one GET.
func (c *Client) Check(ctx context.Context) error {
	_, err := c.read(ctx)
	return err
}

// conflictError returns the error of an Apply that got 412 on every
// attempt.
func (c *Client) conflictError(last error, attempts int) error {
	var apiErr *Error
	if !errors.As(last, &apiErr) {
		return last
	}

	final := *apiErr
	final.Hint = fmt.Sprintf("the %s changed between read and write on all %d attempts; another client keeps writing the config",
		c.describeTarget(), attempts)

	return &final
}

// retryDelay returns the backoff after the given failed attempt:
// RetryDelay doubled per earlier attempt, capped at maxRetryDelay, with
// jitter that takes off up to half, so that competing writers spread out.
func (c *Client) retryDelay(attempt int) time.Duration {
	delay := c.cfg.RetryDelay
	for range attempt - 1 {
		delay *= 2
		if delay >= maxRetryDelay {
			delay = maxRetryDelay
			break
		}
	}

	half := int64(delay / 2)
	if half <= 0 {
		return delay
	}

	return delay - time.Duration(rand.Int64N(half+1))
}

// logChanges logs a write and each route that it added, updated or
// removed.
func (c *Client) logChanges(attempt int, p plan) {
	ctx := context.Background()
	c.log.LogAttrs(ctx, slog.LevelDebug, "wrote caddy routes", slog.Int(logKeyAttempt, attempt),
		slog.Int("added", len(p.added)), slog.Int("updated", len(p.updated)), slog.Int("removed", len(p.removed)))
	for _, change := range []struct {
		message string
		ids     []string
	}{
		{"added caddy route", p.added},
		{"updated caddy route", p.updated},
		{"removed caddy route", p.removed},
	} {
		for _, id := range change.ids {
			c.log.LogAttrs(ctx, slog.LevelDebug, change.message, slog.String(logKeyRoute, id), slog.Int(logKeyAttempt, attempt))
		}
	}
}

// sleep waits for d or until ctx ends, and then returns ctx's error.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()

	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
