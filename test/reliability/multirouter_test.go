package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

func TestTwoRoutersConverge(t *testing.T) {
	requireTestBed(t)
	t.Parallel()
	ns := newNamespace(t, bed.ControlPlane, "")
	caddies := []*testbed.Caddy{startCaddy(t), startCaddy(t)}
	for _, caddy := range caddies {
		startRouter(t, routerFlags(bed.ControlPlane, ns, caddy.AdminURL))
	}

	exps := []expectation{expect(ns, "one"), expect(ns, "two"), expect(ns, "three")}
	for _, e := range exps {
		createDeployment(t, bed.ControlPlane.Clientset, ns, workspace(e.name, 1))
	}
	for _, caddy := range caddies {
		waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	}

	// both routers follow changes in the cluster
	scale(t, ns, "one", 2)
	deleteDeployment(t, bed.ControlPlane.Clientset, ns, "two")
	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("four", 1))
	exps = []expectation{exps[0], exps[2], expect(ns, "four")}
	waitReadyPods(t, ns, "one", 2)
	for _, caddy := range caddies {
		waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	}

	first, err := ownedRoutes(t.Context(), caddies[0])
	if err != nil {
		t.Fatal(err)
	}
	second, err := ownedRoutes(t.Context(), caddies[1])
	if err != nil {
		t.Fatal(err)
	}
	if diff := e2eutil.DiffRoutes(second, first); diff != "" {
		t.Errorf("the two Caddies have different routes; second against first:\n%s", diff)
	}
}

// foreignMinOps is how many routes the foreign client adds at least; it
// deletes one for every second route it adds. With the pause between
// changes, this keeps it busy across a few of the router's drift checks.
const foreignMinOps = 100

// foreignClient adds and deletes routes of its own in a Caddy, as another
// controller sharing the Caddy would, with If-Match so that it never
// overwrites a concurrent change. After each change it checks that every
// route it added and did not delete is still there.
type foreignClient struct {
	caddy *testbed.Caddy
	// added counts the routes added.
	added int
	// live holds the ids of the routes added and not deleted, oldest first.
	live []string
	// conflicts counts the 412 responses, which show that the router wrote
	// between a read and a write of the foreign client.
	conflicts  int
	violations []string
}

// run adds routes and deletes every other one until stop is closed and at
// least foreignMinOps routes were added, or ctx ends.
func (f *foreignClient) run(ctx context.Context, stop <-chan struct{}) error {
	for i := 0; ; i++ {
		select {
		case <-stop:
			if i >= foreignMinOps {
				return nil
			}
		default:
		}

		id := fmt.Sprintf("foreign-%d", i)
		if err := f.add(ctx, id); err != nil {
			return err
		}
		f.added++
		f.live = append(f.live, id)
		f.check(ctx)

		if i%2 == 1 {
			if err := f.remove(ctx, f.live[0]); err != nil {
				return err
			}
			f.live = f.live[1:]
			f.check(ctx)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// add inserts a route with id in front of the routes array.
func (f *foreignClient) add(ctx context.Context, id string) error {
	route := fmt.Sprintf(`{"@id":%q,"match":[{"host":[%q]}],"handle":[{"handler":"static_response","body":%q}],"terminal":true}`,
		id, id+".foreign.test", id)

	return f.conditional(ctx, "adding "+id, func([]e2eutil.Route) (string, string, bool) {
		return http.MethodPut, "/config/apps/http/servers/srv0/routes/0", true
	}, []byte(route))
}

// remove deletes the route with id.
func (f *foreignClient) remove(ctx context.Context, id string) error {
	return f.conditional(ctx, "deleting "+id, func(routes []e2eutil.Route) (string, string, bool) {
		i := slices.IndexFunc(routes, func(r e2eutil.Route) bool { return r.ID == id })
		if i < 0 {
			return "", "", false
		}
		return http.MethodDelete, "/config/apps/http/servers/srv0/routes/" + strconv.Itoa(i), true
	}, nil)
}

// conditional reads the routes and their Etag, builds a request from them
// and sends it with If-Match, again after each 412 and after each request
// that gets no response, which If-Match makes safe to repeat.
func (f *foreignClient) conditional(ctx context.Context, what string, build func([]e2eutil.Route) (method, path string, ok bool), body []byte) error {
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, setupTimeout, true, func(ctx context.Context) (bool, error) {
		routes, etag, err := e2eutil.ReadRoutes(ctx, f.caddy, "srv0")
		if err != nil {
			lastErr = err
			return false, nil
		}
		method, path, ok := build(routes)
		if !ok {
			return false, fmt.Errorf("%s: the route is already gone", what)
		}

		status, respBody, err := adminIfMatch(ctx, f.caddy, method, path, etag, body)
		if err != nil {
			lastErr = err
			return false, nil
		}
		switch status {
		case http.StatusOK:
			return true, nil
		case http.StatusPreconditionFailed:
			f.conflicts++
			return false, nil
		default:
			return false, fmt.Errorf("%s: status %d: %s", what, status, respBody)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w (last error: %v)", what, err, lastErr)
	}

	return nil
}

// adminIfMatch sends one request to caddy's TCP admin API with If-Match
// set to etag and returns the status and the body.
func adminIfMatch(ctx context.Context, caddy *testbed.Caddy, method, path, etag string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+caddy.AdminAddr+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("If-Match", etag)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))

	return resp.StatusCode, string(data), err
}

// adminClient opens a new connection per request, because Caddy closes
// the admin connections on every config change.
var adminClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 10 * time.Second}

// check reads the routes and records each live route that is missing.
func (f *foreignClient) check(ctx context.Context) {
	routes, _, err := e2eutil.ReadRoutes(ctx, f.caddy, "srv0")
	if err != nil {
		f.violations = append(f.violations, "reading the routes: "+err.Error())
		return
	}

	ids := e2eutil.IDs(routes)
	for _, id := range f.live {
		if !slices.Contains(ids, id) {
			f.violations = append(f.violations, fmt.Sprintf("route %s is missing; routes: %v", id, ids))
		}
	}
}

func TestForeignRoutesKept(t *testing.T) {
	e := newEnv(t, envOptions{})
	ns, caddy, router := e.ns, e.caddy, e.router

	exps := []expectation{expect(ns, "kept"), expect(ns, "scaled"), expect(ns, "deleted")}
	for _, x := range exps {
		createDeployment(t, bed.ControlPlane.Clientset, ns, workspace(x.name, 1))
	}
	routes := waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	guard := startGuard(t, caddy, routes[:2]...)

	// the foreign client works while the cluster changes
	writesBefore := routerWrites(t, router)
	foreign := &foreignClient{caddy: caddy}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var foreignErr error
	wg.Go(func() { foreignErr = foreign.run(t.Context(), stop) })

	scale(t, ns, "scaled", 3)
	guard.unguard(routeID(ns, "deleted"))
	deleteDeployment(t, bed.ControlPlane.Clientset, ns, "deleted")
	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("added", 1))
	exps = []expectation{exps[0], exps[1], expect(ns, "added")}
	waitReadyPods(t, ns, "scaled", 3)
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	close(stop)
	wg.Wait()
	if foreignErr != nil {
		t.Fatal(foreignErr)
	}
	t.Logf("foreign client: %d routes added, %d kept, %d conflicts with the router's writes; the router wrote %d times meanwhile",
		foreign.added, len(foreign.live), foreign.conflicts, routerWrites(t, router)-writesBefore)
	for _, v := range foreign.violations {
		t.Errorf("foreign route lost: %s", v)
	}

	// the router's routes are right, and the foreign routes and the
	// catch-all are still there, the catch-all last
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	all, _, err := e2eutil.ReadRoutes(t.Context(), caddy, "srv0")
	if err != nil {
		t.Fatal(err)
	}
	ids := e2eutil.IDs(all)
	for _, id := range foreign.live {
		if !slices.Contains(ids, id) {
			t.Errorf("foreign route %s is missing at the end; routes: %v", id, ids)
		}
	}
	if ids[len(ids)-1] != testbed.CatchAllID {
		t.Errorf("the catch-all is not the last route; routes: %v", ids)
	}
}
