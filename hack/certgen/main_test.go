package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// runInto runs certgen with -out dir and the extra args, failing the test on
// error.
func runInto(t *testing.T, dir string, now time.Time, args ...string) {
	t.Helper()

	if err := run(append([]string{"-out", dir}, args...), io.Discard, now); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()

	cert, err := parseCertPEM(readFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

func TestServingCertVerifies(t *testing.T) {
	dir := t.TempDir()
	runInto(t, dir, testNow, "-ip", "127.0.0.1")

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(readFile(t, filepath.Join(dir, "ca.crt"))) {
		t.Fatal("ca.crt holds no PEM certificate")
	}
	serving := readCert(t, filepath.Join(dir, "tls.crt"))

	names := []string{
		"caddy-router-webhook",
		"caddy-router-webhook.caddy-router",
		"caddy-router-webhook.caddy-router.svc",
		"caddy-router-webhook.caddy-router.svc.cluster.local",
		"127.0.0.1",
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			_, err := serving.Verify(x509.VerifyOptions{
				DNSName:     name,
				Roots:       roots,
				CurrentTime: testNow,
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Errorf("verify for %q: %v", name, err)
			}
		})
	}

	t.Run("other name", func(t *testing.T) {
		_, err := serving.Verify(x509.VerifyOptions{DNSName: "other.caddy-router.svc", Roots: roots, CurrentTime: testNow})
		if err == nil {
			t.Error("verify for other.caddy-router.svc succeeded, expected a name mismatch")
		}
	})

	t.Run("after expiry", func(t *testing.T) {
		_, err := serving.Verify(x509.VerifyOptions{DNSName: names[2], Roots: roots, CurrentTime: testNow.Add(366 * 24 * time.Hour)})
		if err == nil {
			t.Error("verify one year and a day later succeeded, expected an expired certificate")
		}
	})
}

func TestServingKeyMatches(t *testing.T) {
	dir := t.TempDir()
	runInto(t, dir, testNow)

	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
		t.Errorf("tls.crt and tls.key do not form a key pair: %v", err)
	}
}

func TestCAIsCA(t *testing.T) {
	dir := t.TempDir()
	runInto(t, dir, testNow)

	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	if !ca.IsCA {
		t.Error("ca.crt IsCA = false")
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("ca.crt lacks the certificate-signing key usage")
	}
	if want := testNow.Add(10 * 365 * 24 * time.Hour); !ca.NotAfter.Equal(want) {
		t.Errorf("ca.crt NotAfter = %s, expected %s", ca.NotAfter, want)
	}
}

func TestKeyFileModes(t *testing.T) {
	dir := t.TempDir()
	runInto(t, dir, testNow)

	for name, want := range map[string]os.FileMode{"ca.key": 0o600, "tls.key": 0o600, "ca.crt": 0o644, "tls.crt": 0o644} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, expected %o", name, got, want)
		}
	}
}

func TestPatchCarriesCA(t *testing.T) {
	dir := t.TempDir()
	runInto(t, dir, testNow, "-webhook-configuration", "my-config", "-webhook", "my.webhook.example")

	var patch webhookConfigurationPatch
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(dir, patchFile)), &patch); err != nil {
		t.Fatalf("parsing %s: %v", patchFile, err)
	}

	if patch.Kind != "MutatingWebhookConfiguration" {
		t.Errorf("kind = %q, expected MutatingWebhookConfiguration", patch.Kind)
	}
	if patch.Metadata.Name != "my-config" {
		t.Errorf("metadata.name = %q, expected my-config", patch.Metadata.Name)
	}
	if len(patch.Webhooks) != 1 {
		t.Fatalf("got %d webhooks, expected 1", len(patch.Webhooks))
	}
	if patch.Webhooks[0].Name != "my.webhook.example" {
		t.Errorf("webhook name = %q, expected my.webhook.example", patch.Webhooks[0].Name)
	}
	if ca := readFile(t, filepath.Join(dir, "ca.crt")); !bytes.Equal(patch.Webhooks[0].ClientConfig.CABundle, ca) {
		t.Error("caBundle differs from ca.crt")
	}
}

func TestSecondRunReusesCA(t *testing.T) {
	dir := t.TempDir()
	runInto(t, dir, testNow)
	firstCA := readFile(t, filepath.Join(dir, "ca.crt"))
	firstServing := readFile(t, filepath.Join(dir, "tls.crt"))

	runInto(t, dir, testNow.Add(300*24*time.Hour))

	if !bytes.Equal(readFile(t, filepath.Join(dir, "ca.crt")), firstCA) {
		t.Error("ca.crt changed on the second run")
	}
	if bytes.Equal(readFile(t, filepath.Join(dir, "tls.crt")), firstServing) {
		t.Error("tls.crt is unchanged on the second run, expected a renewed certificate")
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(firstCA)
	renewed := readCert(t, filepath.Join(dir, "tls.crt"))
	if _, err := renewed.Verify(x509.VerifyOptions{DNSName: "caddy-router-webhook.caddy-router.svc", Roots: roots, CurrentTime: testNow.Add(600 * 24 * time.Hour)}); err != nil {
		t.Errorf("renewed certificate does not verify with the first CA: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		now     time.Time
		args    []string
		want    string
	}{
		{
			name:    "certificate without key",
			prepare: func(t *testing.T, dir string) { runInto(t, dir, testNow); os.Remove(filepath.Join(dir, "ca.key")) },
			want:    "but not",
		},
		{
			name:    "key without certificate",
			prepare: func(t *testing.T, dir string) { runInto(t, dir, testNow); os.Remove(filepath.Join(dir, "ca.crt")) },
			want:    "but not",
		},
		{
			name: "mismatched CA key",
			prepare: func(t *testing.T, dir string) {
				other := t.TempDir()
				runInto(t, dir, testNow)
				runInto(t, other, testNow)
				if err := os.WriteFile(filepath.Join(dir, "ca.key"), readFile(t, filepath.Join(other, "ca.key")), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: "does not match",
		},
		{
			name: "serving certificate as CA",
			prepare: func(t *testing.T, dir string) {
				runInto(t, dir, testNow)
				for _, ext := range []string{".crt", ".key"} {
					if err := os.Rename(filepath.Join(dir, "tls"+ext), filepath.Join(dir, "ca"+ext)); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: "is not a CA certificate",
		},
		{
			name:    "expired CA",
			prepare: func(t *testing.T, dir string) { runInto(t, dir, testNow) },
			now:     testNow.Add(11 * 365 * 24 * time.Hour),
			want:    "expired on",
		},
		{
			name:    "CA ends before serving certificate",
			prepare: func(t *testing.T, dir string) { runInto(t, dir, testNow) },
			now:     testNow.Add(9*365*24*time.Hour + 200*24*time.Hour),
			want:    "before the serving certificate would",
		},
		{name: "invalid namespace", args: []string{"-namespace", "Caddy_Router"}, want: `-namespace "Caddy_Router" is invalid`},
		{name: "invalid service", args: []string{"-service", "svc.with.dots"}, want: `-service "svc.with.dots" is invalid`},
		{name: "invalid IP", args: []string{"-ip", "localhost"}, want: `"localhost" is not an IP address`},
		{name: "zero validity", args: []string{"-validity", "0s"}, want: "-validity 0s is invalid"},
		{name: "CA shorter than serving", args: []string{"-ca-validity", "24h", "-validity", "48h"}, want: "shorter than -validity"},
		{name: "positional argument", args: []string{"extra"}, want: `unexpected argument "extra"`},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			now := tt.now
			if now.IsZero() {
				now = testNow
			}

			err := run(append([]string{"-out", dir}, tt.args...), io.Discard, now)

			if err == nil {
				t.Fatalf("run succeeded, expected an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, expected it to contain %q", err, tt.want)
			}
		})
	}
}
