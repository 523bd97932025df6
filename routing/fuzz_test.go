package routing

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func FuzzParsePort(f *testing.F) {
	for _, seed := range []string{
		"8089", "1", "65535", "0", "65536", "70000", "-1", "+80", "08089",
		"", " 8089", "8089 ", "8089/tcp", "http", "HTTP", "web", "dns", "a--b",
		"99999999999999999999", "\x00", "é",
	} {
		f.Add(seed)
	}

	spec := &corev1.PodSpec{
		Containers: []corev1.Container{{Name: "ide", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 3000},
			{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		}}},
	}

	f.Fuzz(func(t *testing.T, value string) {
		port, err := ParsePort(value, spec)

		if err != nil {
			var portErr *PortError
			if !errors.As(err, &portErr) {
				t.Fatalf("ParsePort(%q) error %T is not a *PortError", value, err)
			}
			if port != 0 {
				t.Errorf("ParsePort(%q) = %d with an error, want 0", value, port)
			}
			return
		}

		if port < 1 || port > 65535 {
			t.Errorf("ParsePort(%q) = %d, outside 1..65535", value, port)
		}
		if value == "http" && port != 3000 {
			t.Errorf("ParsePort(%q) = %d, want 3000", value, port)
		}
		if value != "http" && value != strings.TrimLeft(value, "-+ ") {
			t.Errorf("ParsePort(%q) accepted a sign or leading space", value)
		}
	})
}

func FuzzHost(f *testing.F) {
	for _, seed := range []struct{ namespace, name string }{
		{"team", "ws1"},
		{"team", "a.b"},
		{"", "ws1"},
		{"team", ""},
		{"team", strings.Repeat("a", 63)},
		{strings.Repeat("n", 63), strings.Repeat("a", 63)},
		{"team", strings.Repeat("a", 64)},
		{"Team", "WS"},
		{"team", "-ws"},
		{"team", "ws_1"},
		{"team.x", "ws"},
	} {
		f.Add(seed.namespace, seed.name)
	}

	namers := make([]*Namer, 0, 3)
	for _, template := range []string{"{name}", "{name}-{namespace}", "{name}.{namespace}"} {
		namer, err := NewNamer(strings.Repeat("d", 60)+".example.test", template)
		if err != nil {
			f.Fatal(err)
		}
		namers = append(namers, namer)
	}

	f.Fuzz(func(t *testing.T, namespace, name string) {
		for _, namer := range namers {
			host, err := namer.Host(namespace, name)

			if err != nil {
				var hostErr *HostError
				if !errors.As(err, &hostErr) {
					t.Fatalf("Host(%q, %q) error %T is not a *HostError", namespace, name, err)
				}
				if host != "" {
					t.Errorf("Host(%q, %q) = %q with an error, want empty", namespace, name, host)
				}
				continue
			}

			if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
				t.Errorf("Host(%q, %q) = %q, not a DNS-1123 subdomain: %v", namespace, name, host, errs)
			}
			if len(host) > validation.DNS1123SubdomainMaxLength {
				t.Errorf("Host(%q, %q) has %d characters, more than 253", namespace, name, len(host))
			}
			for label := range strings.SplitSeq(host, ".") {
				if len(label) > validation.DNS1123LabelMaxLength {
					t.Errorf("Host(%q, %q) = %q has label %q longer than 63", namespace, name, host, label)
				}
			}
			if !strings.HasPrefix(host, name) {
				t.Errorf("Host(%q, %q) = %q, want it to start with the name", namespace, name, host)
			}
			if !strings.HasSuffix(host, "."+namer.BaseDomain()) {
				t.Errorf("Host(%q, %q) = %q, want it to end with the base domain", namespace, name, host)
			}
		}
	})
}

func FuzzRouteID(f *testing.F) {
	f.Add("team", "ws1")
	f.Add("team", "a.b")
	f.Add("a.b", "c")
	f.Add("", "ws")

	f.Fuzz(func(t *testing.T, namespace, name string) {
		id := RouteID(DefaultRouteIDPrefix, namespace, name)
		gotNamespace, gotName, ok := ParseRouteID(DefaultRouteIDPrefix, id)

		valid := len(validation.IsDNS1123Label(namespace)) == 0 && len(validation.IsDNS1123Subdomain(name)) == 0
		if valid && !ok {
			t.Fatalf("ParseRouteID(%q) failed for namespace %q and name %q", id, namespace, name)
		}
		if valid && (gotNamespace != namespace || gotName != name) {
			t.Errorf("ParseRouteID(%q) = %q, %q, want %q, %q", id, gotNamespace, gotName, namespace, name)
		}
		if valid && strings.Contains(id, "/") {
			t.Errorf("RouteID(%q, %q) = %q contains '/'", namespace, name, id)
		}
		if ok && RouteID(DefaultRouteIDPrefix, gotNamespace, gotName) != id {
			t.Errorf("ParseRouteID(%q) = %q, %q, which does not rebuild the id", id, gotNamespace, gotName)
		}
	})
}
