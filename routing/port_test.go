package routing

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParsePort(t *testing.T) {
	spec := &corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}},
			{Name: "ide", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 3000, Protocol: corev1.ProtocolTCP},
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
				{Name: "broken", ContainerPort: 0},
			}},
			{Name: "late", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 4000}}},
		},
		InitContainers: []corev1.Container{
			{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 7000}}},
		},
	}

	tests := []struct {
		name    string
		value   string
		spec    *corev1.PodSpec
		want    int32
		wantErr string
	}{
		{name: "number", value: "8089", spec: spec, want: 8089},
		{name: "lowest", value: "1", spec: spec, want: 1},
		{name: "highest", value: "65535", spec: spec, want: 65535},
		{name: "number without spec", value: "8080", spec: nil, want: 8080},
		{name: "name", value: "http", spec: spec, want: 3000},
		{name: "name without protocol", value: "metrics", spec: spec, want: 9090},
		{name: "empty", value: "", spec: spec, wantErr: `value "" is invalid: the value is empty`},
		{name: "leading space", value: " 8089", spec: spec, wantErr: `value " 8089" is invalid: surrounding whitespace`},
		{name: "trailing newline", value: "8089\n", spec: spec, wantErr: "surrounding whitespace"},
		{name: "protocol suffix", value: "8089/tcp", spec: spec, wantErr: `value "8089/tcp" is invalid: a protocol suffix is not allowed`},
		{name: "zero", value: "0", spec: spec, wantErr: `value "0" is invalid: the port number is out of range`},
		{name: "too high", value: "70000", spec: spec, wantErr: `value "70000" is invalid: the port number is out of range`},
		{name: "negative", value: "-1", spec: spec, wantErr: `value "-1" is invalid: the port number is out of range`},
		{name: "overflow", value: "99999999999999999999999", spec: spec, wantErr: "out of range"},
		{name: "leading zero", value: "08089", spec: spec, wantErr: "leading zeros are not allowed"},
		{name: "plus sign", value: "+80", spec: spec, wantErr: "not a valid port name"},
		{name: "upper case name", value: "HTTP", spec: spec, wantErr: "not a valid port name"},
		{name: "name too long", value: "a-very-long-port-name", spec: spec, wantErr: "not a valid port name"},
		{name: "undeclared name", value: "web", spec: spec, wantErr: `value "web" is invalid: no container in the pod template declares a port with this name`},
		{name: "name without spec", value: "http", spec: nil, wantErr: "the pod template has no containers"},
		{name: "init container name", value: "setup", spec: spec, wantErr: "no container in the pod template declares"},
		{name: "udp name", value: "dns", spec: spec, wantErr: `container "ide" declares this port with protocol UDP`},
		{name: "zero container port", value: "broken", spec: spec, wantErr: "with number 0, which is out of range"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePort(tt.value, tt.spec)

			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParsePort(%q) = %d, want error containing %q", tt.value, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "annotation "+AnnotationPort) {
					t.Errorf("error = %q, want it to name the annotation", err)
				}
				if !strings.Contains(err.Error(), portExpected) {
					t.Errorf("error = %q, want it to say what is expected", err)
				}
				var portErr *PortError
				if !errors.As(err, &portErr) {
					t.Errorf("error %T is not a *PortError", err)
				}
				return
			}

			if err != nil {
				t.Fatalf("ParsePort(%q) error = %v", tt.value, err)
			}
			if got != tt.want {
				t.Errorf("ParsePort(%q) = %d, want %d", tt.value, got, tt.want)
			}
		})
	}
}
