package watch

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// unreachableRetryInterval is how often a list or watch is tried again while
// the API server cannot be reached.
const unreachableRetryInterval = 500 * time.Millisecond

// listFunc and watchFunc are a typed client's List and Watch.
type (
	listFunc[T runtime.Object] func(ctx context.Context, opts metav1.ListOptions) (T, error)
	watchFunc                  func(ctx context.Context, opts metav1.ListOptions) (apiwatch.Interface, error)
)

// retryingListWatch returns a ListWatch whose List and Watch retry every
// unreachableRetryInterval, until the informer stops, for as long as the API server
// cannot be reached. client-go's reflector backs off exponentially, up to
// 30 seconds, after each failed list or watch, so after an API server outage
// it would notice the server's return up to half a minute late. Retrying
// inside the call hides the outage from the reflector; other errors, such as
// Forbidden or Gone, reach it as before. onUnreachable is called with each
// error retried and with nil once a call succeeds.
func retryingListWatch[T runtime.Object](list listFunc[T], watch watchFunc, onUnreachable func(error)) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(callCtx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return retryUnreachable(callCtx, onUnreachable, func(c context.Context) (runtime.Object, error) {
				return list(c, opts)
			})
		},
		WatchFuncWithContext: func(callCtx context.Context, opts metav1.ListOptions) (apiwatch.Interface, error) {
			return retryUnreachable(callCtx, onUnreachable, func(c context.Context) (apiwatch.Interface, error) {
				return watch(c, opts)
			})
		},
	}
}

// retryUnreachable calls call until it returns something other than an
// unreachable error, or ctx ends.
func retryUnreachable[R any](ctx context.Context, onUnreachable func(error), call func(context.Context) (R, error)) (R, error) {
	for {
		result, err := call(ctx)
		if err == nil || !isUnreachable(err) {
			if err == nil {
				onUnreachable(nil)
			}
			return result, err
		}
		onUnreachable(err)

		select {
		case <-ctx.Done():
			return result, err
		case <-time.After(unreachableRetryInterval):
		}
	}
}

// isUnreachable reports whether err means the API server could not be
// reached or is not serving yet, as opposed to a response it sent.
func isUnreachable(err error) bool {
	return utilnet.IsConnectionRefused(err) ||
		utilnet.IsConnectionReset(err) ||
		utilnet.IsProbableEOF(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		apierrors.IsServiceUnavailable(err) ||
		apierrors.IsTooManyRequests(err) ||
		apierrors.IsServerTimeout(err)
}
