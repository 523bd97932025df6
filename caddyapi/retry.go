package caddyapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Caddy v2.11.9 replaces its admin server on every config change and stops
// the old one in the background. On Linux each new listener is a separate
// SO_REUSEPORT socket, so a connection opened just after a write can be
// queued on the old socket and reset when it closes, and a kept-alive
// connection is closed under the next request. The client therefore opens a
// new connection per request and repeats requests that fail this way.

// retry runs op until it succeeds, fails with an error that retryable
// rejects, or has run Config.MaxAttempts times, sleeping with backoff
// between runs. It returns the number of runs and op's last error, which
// after the last run states the attempt count.
func (c *Client) retry(ctx context.Context, op func(attempt int) error) (int, error) {
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		if errors.Is(err, ErrConflict) {
			adminConflictsTotal.Inc()
		}
		if err == nil || !retryable(err) {
			return attempt, err
		}

		if attempt >= c.cfg.MaxAttempts {
			return attempt, c.exhaustedError(err, attempt)
		}

		c.log.LogAttrs(ctx, slog.LevelDebug, "caddy admin request failed, retrying",
			slog.Int(logKeyAttempt, attempt), slog.Any(logKeyErr, err))
		if err := sleep(ctx, c.retryDelay(attempt)); err != nil {
			return attempt, fmt.Errorf("waiting to retry the request to %s: %w", c.cfg.AdminURL, err)
		}
	}
}

// readRetrying reads the managed routes array as retry allows.
func (c *Client) readRetrying(ctx context.Context) (snapshot, error) {
	var snap snapshot
	_, err := c.retry(ctx, func(int) error {
		var err error
		snap, err = c.read(ctx)
		return err
	})

	return snap, err
}

// retryable reports whether a failed attempt may be repeated: after a 412,
// or after a request that got no response for a reason other than a
// timeout. A timeout is not repeated, because a Caddy that is slow to
// reload would only get more load.
func retryable(err error) bool {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return false
	}

	return apiErr.Kind == ErrConflict || apiErr.Kind == ErrUnreachable && !apiErr.timedOut
}

// exhaustedError returns last with a hint that states the attempt count.
func (c *Client) exhaustedError(last error, attempts int) error {
	var apiErr *Error
	if !errors.As(last, &apiErr) {
		return last
	}

	final := *apiErr
	if final.Kind == ErrConflict {
		final.Hint = fmt.Sprintf("the %s changed between read and write on all %d attempts; another client keeps writing the config",
			c.describeTarget(), attempts)
	} else {
		final.Hint = fmt.Sprintf("%s; failed on all %d attempts", final.Hint, attempts)
	}

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
