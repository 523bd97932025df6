package caddyapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// ApplyResult describes what Apply did.
type ApplyResult struct {
	// Written reports whether Apply changed Caddy's config. It is false when
	// the owned routes already equalled the specs.
	Written bool
	// Attempts is how many read-and-compare rounds Apply made: 1, plus one
	// for each retry.
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
// counts as deleted.
//
// Apply retries with backoff, up to Config.MaxAttempts attempts in all, in
// two cases. Caddy responded with 412 because another client changed the
// config between the read and the write, or a request got no response for a
// reason other than a timeout. Repeating an attempt is safe because the
// write is conditional. When a write's response is lost
// and the next read finds the routes as desired, Apply reports the write as
// done.
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

	// read, compare and write until done
	run := &applyRun{desired: desired}
	attempts, err := c.retry(ctx, func(attempt int) error {
		return c.applyOnce(ctx, attempt, run)
	})
	run.result.Attempts = attempts

	return run.result, err
}

// applyRun is the state of one Apply call across its attempts.
type applyRun struct {
	desired []route
	result  ApplyResult
	// unconfirmed is the plan of a write whose response was lost, or nil.
	unconfirmed *plan
}

// applyOnce makes one attempt of Apply and records a successful write in
// run.result.
func (c *Client) applyOnce(ctx context.Context, attempt int, run *applyRun) error {
	// read and compare
	snap, err := c.read(ctx)
	if err != nil {
		return err
	}
	if c.afterRead != nil {
		c.afterRead(attempt)
	}

	p, err := planRoutes(snap.routes, run.desired, c.cfg.IDPrefix)
	if err != nil {
		return err
	}
	if !p.changed {
		// the routes are as desired; if an earlier write's response was
		// lost, that write most likely made them so
		if run.unconfirmed != nil {
			c.recordWrite(attempt, &run.result, *run.unconfirmed)
		}
		return nil
	}

	// write under If-Match
	err = c.write(ctx, snap, p.routes)
	switch {
	case err == nil:
		c.recordWrite(attempt, &run.result, p)
	case errors.Is(err, ErrUnreachable):
		run.unconfirmed = &p
	}

	return err
}

// recordWrite counts and logs a write and fills in result.
func (c *Client) recordWrite(attempt int, result *ApplyResult, p plan) {
	adminWritesTotal.Inc()
	result.Written = true
	result.Added, result.Updated, result.Removed = p.added, p.updated, p.removed

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

// Owned returns the owned routes currently in the managed routes array,
// decoded into RouteSpecs and sorted by ID. It sends one GET, repeated as
// Apply repeats a request that fails without a response. Hosts and dials
// are returned as Caddy stores them, sorted.
func (c *Client) Owned(ctx context.Context) ([]RouteSpec, error) {
	snap, err := c.readRetrying(ctx)
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
// a "routes" key passes, because Apply creates the key. It sends one GET,
// repeated as Apply repeats a request that fails without a response.
func (c *Client) Check(ctx context.Context) error {
	_, err := c.readRetrying(ctx)
	return err
}
