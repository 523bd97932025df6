package manifests_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// caddyConfig is the part of Caddy's JSON config that the tests read.
type caddyConfig struct {
	Admin struct {
		Listen string `json:"listen"`
		Config struct {
			Persist *bool `json:"persist"`
		} `json:"config"`
	} `json:"admin"`
	Apps struct {
		HTTP struct {
			HTTPPort  int `json:"http_port"`
			HTTPSPort int `json:"https_port"`
			Servers   map[string]struct {
				Listen []string          `json:"listen"`
				Routes []json.RawMessage `json:"routes"`
			} `json:"servers"`
		} `json:"http"`
	} `json:"apps"`
}

// baseCaddyConfig returns caddy.json from the rendered caddy-config
// ConfigMap, raw and decoded.
func baseCaddyConfig(t *testing.T, objs objects) ([]byte, caddyConfig) {
	t.Helper()

	configMap := convert[corev1.ConfigMap](t, objs.find(t, "ConfigMap", caddyConfigMap))
	raw, ok := configMap.Data["caddy.json"]
	if !ok {
		t.Fatalf("ConfigMap %s has no caddy.json", configMap.Name)
	}

	var config caddyConfig
	if err := json.Unmarshal([]byte(raw), &config); err != nil {
		t.Fatalf("caddy.json: %v", err)
	}
	return []byte(raw), config
}

func TestCaddyConfigShape(t *testing.T) {
	objs := baseObjects(t)
	_, config := baseCaddyConfig(t, objs)

	if config.Admin.Config.Persist == nil || *config.Admin.Config.Persist {
		t.Error("admin.config.persist is not false: the router's routes must not outlive a restart on the read-only filesystem")
	}

	srv0, ok := config.Apps.HTTP.Servers["srv0"]
	if !ok {
		t.Fatal("no server srv0")
	}
	if got := strings.Join(srv0.Listen, ","); got != ":8080,:8443" {
		t.Errorf("srv0 listen = %s, expected :8080,:8443", got)
	}
	if config.Apps.HTTP.HTTPPort != 8080 || config.Apps.HTTP.HTTPSPort != 8443 {
		t.Errorf("http_port, https_port = %d, %d, expected 8080, 8443 so that Caddy serves plain HTTP on one and TLS on the other", config.Apps.HTTP.HTTPPort, config.Apps.HTTP.HTTPSPort)
	}

	if len(srv0.Routes) == 0 {
		t.Fatal("srv0 has no routes")
	}
	var last struct {
		ID string `json:"@id"`
	}
	if err := json.Unmarshal(srv0.Routes[len(srv0.Routes)-1], &last); err != nil {
		t.Fatal(err)
	}
	if last.ID != testbed.CatchAllID {
		t.Errorf("last srv0 route @id = %q, expected %q", last.ID, testbed.CatchAllID)
	}
}

// TestAdminSocketShared checks that Caddy listens on the admin socket the
// router is configured with, in a volume that both containers mount and no
// other does.
func TestAdminSocketShared(t *testing.T) {
	objs := baseObjects(t)
	_, config := baseCaddyConfig(t, objs)
	settings := convert[corev1.ConfigMap](t, objs.find(t, "ConfigMap", settingsMap))
	pod := objs.deployment(t).Spec.Template.Spec

	adminURL := settings.Data["CADDY_ADMIN_URL"]
	if adminURL != config.Admin.Listen {
		t.Fatalf("router CADDY_ADMIN_URL = %q, Caddy admin.listen = %q, expected the same socket", adminURL, config.Admin.Listen)
	}
	socket, ok := strings.CutPrefix(adminURL, "unix/")
	if !ok || !path.IsAbs(socket) {
		t.Fatalf("admin address %q is not unix/<absolute path>", adminURL)
	}

	// The volume mounted at the socket's folder must be the same emptyDir
	// in both containers.
	mounted := map[string]string{}
	for _, c := range pod.Containers {
		for _, m := range c.VolumeMounts {
			if m.MountPath == path.Dir(socket) {
				mounted[c.Name] = m.Name
			}
		}
	}
	if len(mounted) != 2 || mounted["caddy"] == "" || mounted["caddy"] != mounted["router"] {
		t.Fatalf("volumes at %s = %v, expected one volume mounted by caddy and router", path.Dir(socket), mounted)
	}
	for _, v := range pod.Volumes {
		if v.Name == mounted["caddy"] && v.EmptyDir == nil {
			t.Errorf("volume %s is not an emptyDir", v.Name)
		}
	}
}

func TestCaddyValidates(t *testing.T) {
	raw, _ := baseCaddyConfig(t, baseObjects(t))
	caddy := tool(t, "caddy")

	dir := t.TempDir()
	configPath := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(configPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	_, stderr, err := runCommand(dir, nil, nil, caddy, "validate", "--config", configPath)
	if err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, stderr)
	}
}

// TestCaddyServesBothPorts runs the base config in a real Caddy, moved to
// loopback ports and a temporary socket. It adds a route through the admin
// socket as the router does, then checks that plain HTTP and HTTPS both
// reach it and that other hosts get the catch-all 404.
func TestCaddyServesBothPorts(t *testing.T) {
	raw, _ := baseCaddyConfig(t, baseObjects(t))
	ctx := t.Context()

	// Move the listeners to free loopback ports and the socket to a
	// temporary folder.
	httpAddr := freeAddr(t)
	httpsAddr := freeAddr(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "admin.sock")
	config := string(raw)
	for old, replacement := range map[string]string{
		`"unix//run/caddy/admin.sock"`: strconv.Quote("unix/" + socket),
		`"http_port": 8080`:            `"http_port": ` + port(t, httpAddr),
		`"https_port": 8443`:           `"https_port": ` + port(t, httpsAddr),
		`[":8080", ":8443"]`:           fmt.Sprintf("[%q, %q]", httpAddr, httpsAddr),
	} {
		if !strings.Contains(config, old) {
			t.Fatalf("caddy.json no longer contains %s; update this test", old)
		}
		config = strings.ReplaceAll(config, old, replacement)
	}

	startCaddy(t, dir, config)
	admin := unixClient(socket)
	waitFor(t, "Caddy admin socket", func() bool {
		resp, err := admin.Get("http://localhost/config/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Insert a route before the catch-all, as the router does.
	const host = "ws1.workspaces.example.test"
	route := fmt.Sprintf(`{"@id":"k8s-router.test","match":[{"host":[%q]}],"handle":[{"handler":"static_response","status_code":200,"body":"routed\n"}]}`, host)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://localhost/config/apps/http/servers/srv0/routes/0", strings.NewReader(route))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("adding a route: status %d: %s", resp.StatusCode, body)
	}

	// Caddy's internal issuer signs the certificate for the new host in the
	// background, so HTTPS may need a moment.
	httpsClient := &http.Client{Transport: &http.Transport{
		Proxy: nil,
		//nolint:gosec // The certificate comes from Caddy's own local CA, which this client does not trust.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: host},
	}}
	plainClient := &http.Client{Transport: &http.Transport{Proxy: nil}}

	tests := []struct {
		name   string
		client *http.Client
		url    string
		host   string
		status int
		body   string
	}{
		{"http route", plainClient, "http://" + httpAddr + "/", host, 200, "routed\n"},
		{"http catch-all", plainClient, "http://" + httpAddr + "/", "other.workspaces.example.test", 404, testbed.CatchAllBody},
		{"https route", httpsClient, "https://" + httpsAddr + "/", host, 200, "routed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var status int
			var got string
			waitFor(t, tt.name, func() bool {
				status, got = getWithHost(ctx, tt.client, tt.url, tt.host)
				return status == tt.status
			})
			if got != tt.body {
				t.Errorf("body = %q, expected %q", got, tt.body)
			}
		})
	}
}

// startCaddy runs bin/caddy on config in dir until the test ends.
func startCaddy(t *testing.T, dir, config string) {
	t.Helper()

	configPath := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	cmd := exec.Command(tool(t, "caddy"), "run", "--config", configPath)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = &log, &log
	// Kill Caddy with the test binary, also when the binary is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s", log.String())
		}
	})
}

func unixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

func getWithHost(ctx context.Context, client *http.Client, url, host string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Host = host

	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()

	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFor polls condition until it holds or a minute passes, then fails the
// test naming what it waited for.
func waitFor(t *testing.T, what string, condition func() bool) {
	t.Helper()

	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return condition(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()

	addr, err := testbed.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func port(t *testing.T, addr string) string {
	t.Helper()

	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
