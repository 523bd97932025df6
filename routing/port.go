package routing

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// portExpected is appended to every port error so the user knows the fix.
const portExpected = "expected a decimal port number from 1 to 65535 or the name of a container port in the pod template"

// PortError reports an invalid [AnnotationPort] value. It is caused by the
// object itself, so retrying cannot fix it. Match it with [errors.As].
type PortError struct {
	// Value is the annotation value as supplied.
	Value string
	// Reason is the rule the value violates.
	Reason string
}

// Error returns the annotation key, the quoted value, the reason and what is
// expected instead.
func (e *PortError) Error() string {
	return fmt.Sprintf("annotation %s value %q is invalid: %s; %s", AnnotationPort, e.Value, e.Reason, portExpected)
}

// ParsePort resolves the value of the [AnnotationPort] annotation against the
// pod template spec. A value of ASCII digits without leading zeros is a port
// number and must be from 1 to 65535. Any other value must be a valid port
// name declared by a TCP port of one of spec's containers (init containers
// are not searched), and the first such port in container order wins. spec
// may be nil, in which case no name resolves. Every rejection is a
// [*PortError]. A missing annotation is the caller's case, which uses
// [DefaultPort].
func ParsePort(value string, spec *corev1.PodSpec) (int32, error) {
	if value == "" {
		return 0, &PortError{Value: value, Reason: "the value is empty"}
	}

	if strings.TrimSpace(value) != value {
		return 0, &PortError{Value: value, Reason: "surrounding whitespace is not allowed"}
	}

	if isNumeric(value) {
		return parsePortNumber(value)
	}

	if strings.Contains(value, "/") {
		return 0, &PortError{Value: value, Reason: "a protocol suffix is not allowed, the port is always TCP"}
	}

	if errs := validation.IsValidPortName(value); len(errs) > 0 {
		return 0, &PortError{Value: value, Reason: "not a port number and not a valid port name: " + strings.Join(errs, "; ")}
	}

	return lookupPortName(value, spec)
}

// isNumeric reports whether value is an optional '-' followed by ASCII
// digits only. Negative values are numeric so that "-1" is reported as out
// of range rather than as a bad name.
func isNumeric(value string) bool {
	digits := strings.TrimPrefix(value, "-")
	if digits == "" {
		return false
	}

	for _, r := range digits {
		if r < '0' || r > '9' {
			return false
		}
	}

	return true
}

// parsePortNumber parses a numeric value and checks its range.
func parsePortNumber(value string) (int32, error) {
	if len(value) > 1 && value[0] == '0' {
		return 0, &PortError{Value: value, Reason: "leading zeros are not allowed"}
	}

	port, err := strconv.Atoi(value)
	if err != nil || len(validation.IsValidPortNum(port)) > 0 {
		return 0, &PortError{Value: value, Reason: "the port number is out of range"}
	}

	return int32(port), nil
}

// lookupPortName returns the number of the first TCP container port called
// name in spec.
func lookupPortName(name string, spec *corev1.PodSpec) (int32, error) {
	if spec == nil {
		return 0, &PortError{Value: name, Reason: "no container port has this name because the pod template has no containers"}
	}

	for _, container := range spec.Containers {
		for _, port := range container.Ports {
			if port.Name != name {
				continue
			}

			if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
				reason := fmt.Sprintf("container %q declares this port with protocol %s, but the route needs TCP", container.Name, port.Protocol)
				return 0, &PortError{Value: name, Reason: reason}
			}

			if len(validation.IsValidPortNum(int(port.ContainerPort))) > 0 {
				reason := fmt.Sprintf("container %q declares this port with number %d, which is out of range", container.Name, port.ContainerPort)
				return 0, &PortError{Value: name, Reason: reason}
			}

			return port.ContainerPort, nil
		}
	}

	return 0, &PortError{Value: name, Reason: "no container in the pod template declares a port with this name"}
}
