package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

func TestInvalidPortAnnotations(t *testing.T) {
	e := newEnv(t, envOptions{})
	ns, caddy := e.ns, e.caddy

	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("good", 1))
	routes := waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{expect(ns, "good")}, setupTimeout)
	startGuard(t, caddy, routes...)

	// one Deployment per invalid value. None gets a route, and each gets a
	// Warning Event that names the value.
	values := []string{"http", "0", "70000", " 8089", "8089/tcp", "-1", ""}
	for i, value := range values {
		d := workspace(fmt.Sprintf("bad-%d", i), 1)
		// "http" must name no declared port
		d.Spec.Template.Spec.Containers[0].Ports[0].Name = "ide"
		d.Annotations[routing.AnnotationPort] = value
		createDeployment(t, bed.ControlPlane.Clientset, ns, d)
	}
	for i, value := range values {
		name := fmt.Sprintf("bad-%d", i)
		event := waitEvent(t, bed.ControlPlane.Clientset, ns, name, "Warning", "InvalidPort", strconv.Quote(value))
		if !strings.Contains(event.Message, "no route is created until it is fixed") {
			t.Errorf("event on %s = %q, want it to say that no route is created", name, event.Message)
		}
		waitPodsReady(t, ns, name)
	}
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{expect(ns, "good")}, setupTimeout)

	// a bad edit of a routed Deployment keeps its route at the last valid
	// port, and the guard fails the test if the route goes
	patchAnnotation(t, bed.ControlPlane.Clientset, ns, "good", routing.AnnotationPort, "70000")
	waitEvent(t, bed.ControlPlane.Clientset, ns, "good", "Warning", "InvalidPort", "keeping the last valid port 8080")
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{expect(ns, "good")}, setupTimeout)

	// the fix takes effect
	patchAnnotation(t, bed.ControlPlane.Clientset, ns, "good", routing.AnnotationPort, "alt")
	fixed := time.Now()
	took := waitRecovered(t, caddy, fixed, routesOf([]expectation{{ns: ns, name: "good", host: "good." + baseDomain, port: altPort}}))
	t.Logf("the fixed annotation took effect after %v", took.Round(time.Millisecond))
}

// withLabel returns d with its selector and pod labels set to app=value.
func withLabel(d *appsv1.Deployment, value string) *appsv1.Deployment {
	labels := map[string]string{"app": value}
	d.Spec.Selector.MatchLabels = labels
	d.Spec.Template.Labels = labels

	return d
}

func TestInvalidDeploymentNames(t *testing.T) {
	e := newEnv(t, envOptions{webhook: true})
	ns, caddy := e.ns, e.caddy

	warnings := &e2eutil.WarningRecorder{}
	config := rest.CopyConfig(bed.ControlPlane.Config)
	config.WarningHandler = warnings
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}

	createDeployment(t, client, ns, workspace("good", 1))
	routes := waitRoutes(t, caddy, client, []expectation{expect(ns, "good")}, setupTimeout)
	startGuard(t, caddy, routes...)
	warnings.Take()

	name63 := strings.Repeat("a", 63)
	name64 := strings.Repeat("b", 64)
	tests := []struct {
		name  string
		label string
		valid bool
	}{
		{name: "my.app", label: "my.app"},
		{name: name63, label: "name-63", valid: true},
		{name: name64, label: "name-64"},
	}
	exps := []expectation{expect(ns, "good")}
	for _, tt := range tests {
		created := createDeployment(t, client, ns, withLabel(workspace(tt.name, 1), tt.label))
		got, annotated := created.Annotations[routing.AnnotationRouteURL]
		warned := warnings.Take()

		if tt.valid {
			if got != tt.name+"."+baseDomain {
				t.Errorf("webhook annotation of %s = %q, want %q", tt.name, got, tt.name+"."+baseDomain)
			}
			exps = append(exps, expect(ns, tt.name))
			continue
		}
		if annotated {
			t.Errorf("webhook annotated %s with %q, want no annotation", tt.name, got)
		}
		if !containsText(warned, strconv.Quote(tt.name)) {
			t.Errorf("create warnings for %s = %q, want one naming the name", tt.name, warned)
		}
		waitEvent(t, client, ns, tt.name, "Warning", "InvalidName", strconv.Quote(tt.name))
	}

	// every Deployment has a Ready pod, but only the valid names have routes
	for _, tt := range tests {
		waitFor(t, "a Ready pod of "+tt.label, setupTimeout, func(ctx context.Context) (bool, error) {
			pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + tt.label})
			return err == nil && len(pods.Items) == 1 && readyIP(&pods.Items[0]) != "", err
		})
	}
	waitRoutes(t, caddy, client, exps, setupTimeout)
}

// containsText reports whether one of texts contains substring.
func containsText(texts []string, substring string) bool {
	for _, text := range texts {
		if strings.Contains(text, substring) {
			return true
		}
	}

	return false
}

// manualNode is a Node that the kubelet stand-in leaves alone, so that a
// test can write the status of its pods itself.
const manualNode = "manual-node"

// manualWorkspace returns a Deployment of one pod on manualNode whose
// container declares port, with the port annotation set to it.
func manualWorkspace(name string, port int) *appsv1.Deployment {
	d := testbed.Deployment(name, 1, int32(port))
	d.Spec.Template.Spec.NodeName = manualNode
	d.Annotations = map[string]string{routing.AnnotationPort: strconv.Itoa(port)}

	return d
}

// setPodStatus waits for the pod of the Deployment ns/name and writes the
// status of a running, Ready pod with the given pod IPs, which may be none.
func setPodStatus(t *testing.T, ns, name, hostIP string, ips ...string) {
	t.Helper()
	pods := bed.ControlPlane.Clientset.CoreV1().Pods(ns)

	var pod *corev1.Pod
	waitFor(t, "the pod of "+ns+"/"+name, setupTimeout, func(ctx context.Context) (bool, error) {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil || len(list.Items) != 1 {
			return false, err
		}
		pod = &list.Items[0]
		return true, nil
	})

	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = hostIP
	pod.Status.HostIPs = []corev1.HostIP{{IP: hostIP}}
	pod.Status.PodIP = ""
	pod.Status.PodIPs = nil
	for _, ip := range ips {
		if pod.Status.PodIP == "" {
			pod.Status.PodIP = ip
		}
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	pod.Status.StartTime = &now
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	if _, err := pods.UpdateStatus(t.Context(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("writing the status of pod %s/%s: %v", ns, pod.Name, err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = pods.Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
}

// startManualBackend starts a backend named name on ip with a free port,
// closed when the test ends, and returns the port.
func startManualBackend(t *testing.T, ip, name string) int {
	t.Helper()

	backend, err := testbed.StartBackend(ip, 0, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })

	_, port, _ := net.SplitHostPort(backend.Addr)
	n, _ := strconv.Atoi(port)

	return n
}

func TestPodAddresses(t *testing.T) {
	e := newEnv(t, envOptions{})
	ns, caddy := e.ns, e.caddy

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: manualNode}}
	if _, err := bed.ControlPlane.Clientset.CoreV1().Nodes().Create(t.Context(), node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("good", 1))
	routes := waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{expect(ns, "good")}, setupTimeout)
	startGuard(t, caddy, routes...)

	// a Ready pod without an IP gets no route
	noIPPort := startManualBackend(t, "127.0.0.1", "no-ip")
	createDeployment(t, bed.ControlPlane.Clientset, ns, manualWorkspace("no-ip", noIPPort))
	setPodStatus(t, ns, "no-ip", "127.0.0.1")

	// a pod with only an IPv6 address is routed in brackets
	ipv6Port := startManualBackend(t, "::1", "ipv6")
	createDeployment(t, bed.ControlPlane.Clientset, ns, manualWorkspace("ipv6", ipv6Port))
	setPodStatus(t, ns, "ipv6", "::1", "::1")

	// a hostNetwork pod is routed at its IP, the node's
	hostPort := startManualBackend(t, "127.0.0.1", "host-network")
	d := manualWorkspace("host-network", hostPort)
	d.Spec.Template.Spec.HostNetwork = true
	createDeployment(t, bed.ControlPlane.Clientset, ns, d)
	setPodStatus(t, ns, "host-network", "127.0.0.1", "127.0.0.1")

	exps := []expectation{
		expect(ns, "good"),
		{ns: ns, name: "ipv6", host: "ipv6." + baseDomain, port: ipv6Port},
		{ns: ns, name: "host-network", host: "host-network." + baseDomain, port: hostPort},
	}
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	for _, name := range []string{"ipv6", "host-network"} {
		status, body, err := caddy.Get(t.Context(), name+"."+baseDomain, "/")
		if err != nil || status != http.StatusOK || body != name+"\n" {
			t.Errorf("GET %s through Caddy = %d %q %v, want 200 from its backend", name, status, body, err)
		}
	}

	// the pod gets its IP: now it is routed
	setPodStatus(t, ns, "no-ip", "127.0.0.1", "127.0.0.1")
	exps = append(exps, expectation{ns: ns, name: "no-ip", host: "no-ip." + baseDomain, port: noIPPort})
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
}

func TestBaseDomainFlag(t *testing.T) {
	requireTestBed(t)
	t.Parallel()

	// values the router refuses before it starts
	for _, value := range []string{"", "*.example.test", "10.0.0.1", "::1", "my_domain.test"} {
		t.Run(strconv.Quote(value), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bed.RouterBinary, "--namespace=default", "--base-domain="+value,
				"--kubeconfig="+bed.ControlPlane.KubeconfigPath, "--webhook-port=0", "--health-addr=127.0.0.1:0")

			out, err := cmd.CombinedOutput()

			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
				t.Fatalf("router exited with %v, want exit code 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), "--base-domain "+strconv.Quote(value)) && !strings.Contains(string(out), "base domain "+strconv.Quote(value)) {
				t.Errorf("output %q does not name the value %q", out, value)
			}
		})
	}

	// upper case and a trailing dot are normalized
	t.Run("normalized", func(t *testing.T) {
		ns := newNamespace(t, bed.ControlPlane, "")
		caddy := startCaddy(t)
		flags := append(routerFlags(bed.ControlPlane, ns, caddy.AdminURL), "--base-domain=Rel.Example.TEST.")
		startRouter(t, flags)

		createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("web", 1))
		waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{{ns: ns, name: "web", host: "web.rel.example.test", port: httpPort}}, setupTimeout)
	})
}

// admissionClient returns an HTTPS client that trusts caPEM.
func admissionClient(t *testing.T, caPEM []byte) *http.Client {
	t.Helper()

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the webhook CA does not parse")
	}

	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
}

// reviewBody returns an admission.k8s.io/v1 AdmissionReview of a CREATE of
// a Deployment named name in ns with the given apiVersion, kind and padding
// in an annotation.
func reviewBody(apiVersion, kind, ns, name string, padding int) []byte {
	object := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":%q,"namespace":%q,"annotations":{"padding":%q}}}`,
		name, ns, strings.Repeat("a", padding))

	return fmt.Appendf(nil, `{"apiVersion":%q,"kind":%q,"request":{"uid":"e2e-1","kind":{"group":"apps","version":"v1","kind":"Deployment"},`+
		`"resource":{"group":"apps","version":"v1","resource":"deployments"},"operation":"CREATE","namespace":%q,"name":%q,"object":%s}}`,
		apiVersion, kind, ns, name, object)
}

func TestAdmissionReviewBodies(t *testing.T) {
	e := newEnv(t, envOptions{webhook: true})
	ns, caddy, router := e.ns, e.caddy, e.router
	client := admissionClient(t, e.hook.CAPEM)

	tests := []struct {
		name        string
		body        []byte
		wantCode    int32
		wantMessage string
	}{
		{name: "malformed", body: []byte(`{"apiVersion": "admission.k8s.io/v1", "kind": `), wantCode: 400, wantMessage: "decoding the AdmissionReview"},
		{name: "over size limit", body: reviewBody("admission.k8s.io/v1", "AdmissionReview", ns, "big", 7<<20), wantCode: 413, wantMessage: "larger than the maximum of 7340031 bytes"},
		{name: "other version", body: reviewBody("admission.k8s.io/v1beta1", "AdmissionReview", ns, "web", 0), wantCode: 400, wantMessage: `apiVersion "admission.k8s.io/v1beta1"`},
		{name: "other kind", body: reviewBody("admission.k8s.io/v1", "ConversionReview", ns, "web", 0), wantCode: 400, wantMessage: `kind "ConversionReview"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Post(e.hook.URL, "application/json", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()

			var review admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
				t.Fatalf("decoding the response (status %d): %v", resp.StatusCode, err)
			}
			if review.Response == nil || review.Response.Result == nil {
				t.Fatalf("response = %+v, want a result", review.Response)
			}
			if review.Response.Allowed {
				t.Error("response allowed, want an error")
			}
			if review.Response.Result.Code != tt.wantCode {
				t.Errorf("result code = %d, want %d", review.Response.Result.Code, tt.wantCode)
			}
			if !strings.Contains(review.Response.Result.Message, tt.wantMessage) {
				t.Errorf("result message = %q, want it to contain %q", review.Response.Result.Message, tt.wantMessage)
			}
		})
	}

	// the webhook and the router still work
	created := createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("web", 1))
	if got := created.Annotations[routing.AnnotationRouteURL]; got != "web."+baseDomain {
		t.Errorf("webhook annotation after the bad requests = %q, want %q", got, "web."+baseDomain)
	}
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{expect(ns, "web")}, setupTimeout)
	if err := router.WaitReady(t.Context(), setupTimeout); err != nil {
		t.Error(err)
	}
}
