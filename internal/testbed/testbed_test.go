package testbed

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

func startCaddy(t *testing.T, opts CaddyOptions) *Caddy {
	t.Helper()

	c, err := StartCaddy(t.Context(), opts)
	if SkipIfMissing(err) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})

	return c
}

func TestCaddyRouteAndCatchAll(t *testing.T) {
	c := startCaddy(t, CaddyOptions{})
	ctx := t.Context()

	backend, err := StartBackend("127.0.0.1", 0, "backend-a")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()

	// insert a route before the catch-all
	route := fmt.Sprintf(`{"@id":"test-route","match":[{"host":["a.example.test"]}],"terminal":true,
		"handle":[{"handler":"reverse_proxy","upstreams":[{"dial":%q}]}]}`, backend.Addr)
	status, _, body, err := c.Admin(ctx, http.MethodPut, "/config/apps/http/servers/srv0/routes/0", []byte(route))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Fatalf("PUT route: status %d, body %s", status, body)
	}

	status, got, err := c.Get(ctx, "a.example.test", "/")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || got != "backend-a\n" {
		t.Errorf("GET a.example.test = %d %q, want 200 %q", status, got, "backend-a\n")
	}

	status, got, err = c.Get(ctx, "b.example.test", "/")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusNotFound || got != CatchAllBody {
		t.Errorf("GET b.example.test = %d %q, want 404 %q", status, got, CatchAllBody)
	}
}

func TestCaddyAdminUnixSocket(t *testing.T) {
	socket := t.TempDir() + "/admin.sock"
	c := startCaddy(t, CaddyOptions{AdminSocket: socket})

	if c.AdminURL != "unix/"+socket {
		t.Errorf("AdminURL = %q, want %q", c.AdminURL, "unix/"+socket)
	}
	status, etag, _, err := c.Admin(t.Context(), http.MethodGet, "/config/apps/http/servers/srv0/routes", nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Errorf("GET routes over the socket: status %d", status)
	}
	if etag == "" {
		t.Error("GET routes over the socket returned no Etag")
	}
}

func TestCaddyRestartDropsAddedRoutes(t *testing.T) {
	c := startCaddy(t, CaddyOptions{})
	ctx := t.Context()

	route := `{"@id":"added","match":[{"host":["x.example.test"]}],"handle":[{"handler":"static_response","body":"x"}]}`
	if status, _, body, err := c.Admin(ctx, http.MethodPut, "/config/apps/http/servers/srv0/routes/0", []byte(route)); err != nil || status != http.StatusOK {
		t.Fatalf("PUT route: %d %s %v", status, body, err)
	}

	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}

	status, _, _, err := c.Admin(ctx, http.MethodGet, "/id/added", nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusNotFound {
		t.Errorf("GET /id/added after restart: status %d, want 404", status)
	}
}

func TestBackendWebsocketEcho(t *testing.T) {
	backend, err := StartBackend("127.0.0.1", 0, "ws")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()

	ws, err := websocket.Dial("ws://"+backend.Addr+"/ws", "", "http://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	if _, err := ws.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := ws.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "ping" {
		t.Errorf("echo = %q, want %q", buf[:n], "ping")
	}
}

func startControlPlane(t *testing.T, opts ControlPlaneOptions) *ControlPlane {
	t.Helper()

	cp, err := StartControlPlane(t.Context(), opts)
	if SkipIfMissing(err) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})

	return cp
}

func TestDeploymentPodsServeTheirNames(t *testing.T) {
	cp := startControlPlane(t, ControlPlaneOptions{ControllerManager: true})
	ctx := t.Context()
	const ns = "default"

	kubelet, err := StartKubelet(ctx, cp.Clientset, KubeletOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kubelet.Stop)

	deployments := cp.Clientset.AppsV1().Deployments(ns)
	_, err = deployments.Create(ctx, Deployment("web", 2, 8080), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// the real controllers create two pods; the stand-in makes them Ready
	var pods []corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cp.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		pods = list.Items
		ready := 0
		for i := range pods {
			if podReady(&pods[i]) && pods[i].Status.PodIP != "" {
				ready++
			}
		}
		return ready == 2 && len(pods) == 2, nil
	})
	if err != nil {
		t.Fatalf("waiting for 2 Ready pods: %v (have %d pods)", err, len(pods))
	}

	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	for _, pod := range pods {
		if !strings.HasPrefix(pod.Status.PodIP, "127.") {
			t.Errorf("pod %s has IP %s, want a 127.x.y.z address", pod.Name, pod.Status.PodIP)
		}
		resp, err := client.Get("http://" + net.JoinHostPort(pod.Status.PodIP, "8080") + "/")
		if err != nil {
			t.Fatalf("GET pod %s: %v", pod.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != pod.Name+"\n" {
			t.Errorf("pod %s answered %q, want its name", pod.Name, body)
		}
	}
	if pods[0].Status.PodIP == pods[1].Status.PodIP {
		t.Errorf("both pods have IP %s, want distinct addresses", pods[0].Status.PodIP)
	}

	// scale to 0: the pods go away
	// the controllers update the Deployment too, so retry on conflict
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := deployments.GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 0
		_, err = deployments.UpdateScale(ctx, "web", scale, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitForNoPods(t, cp, ns, "app=web")

	// delete: the garbage collector removes the ReplicaSet
	if err := deployments.Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		t.Fatalf("waiting for the Deployment to be deleted: %v", err)
	}
	list, err := cp.Clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("%d ReplicaSets left after deleting the Deployment", len(list.Items))
	}
}

func waitForNoPods(t *testing.T, cp *ControlPlane, namespace, selector string) {
	t.Helper()

	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cp.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		return len(list.Items) == 0, nil
	})
	if err != nil {
		t.Fatalf("waiting for pods %q to go away: %v", selector, err)
	}
}
