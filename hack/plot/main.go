// Command plot draws the Ready-to-routable latency of the router against the
// number of routes in Caddy as an SVG file. It reads the lines of
// BenchmarkReadyToRoutable from saved `go test -bench` output, so the plot
// always matches the recorded numbers:
//
//	go run ./hack/plot -in docs/bench-output.txt -out docs/ready-to-routable.svg
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// point is the result of one BenchmarkReadyToRoutable case.
type point struct {
	routes   int
	p50      float64
	p99      float64
	reload50 float64
}

// benchLine matches the name of a BenchmarkReadyToRoutable result line and
// captures the route count.
var benchLine = regexp.MustCompile(`^BenchmarkReadyToRoutable/routes=(\d+)(-\d+)?\s`)

func main() {
	in := flag.String("in", "docs/bench-output.txt", "saved output of `go test -bench` with BenchmarkReadyToRoutable lines")
	out := flag.String("out", "docs/ready-to-routable.svg", "SVG file to write")
	flag.Parse()

	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

// run reads the benchmark output at in and writes the plot to out.
func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()

	points, err := parse(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", in, err)
	}

	return os.WriteFile(out, []byte(render(points)), 0o644)
}

// parse returns the BenchmarkReadyToRoutable results in r, sorted by route
// count. A later line for the same route count replaces an earlier one. It
// returns an error if a line lacks one of the three metrics, or if there is
// no line at all.
func parse(r io.Reader) ([]point, error) {
	byRoutes := map[int]point{}
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		line := scanner.Text()
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}

		routes, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("invalid route count in %q: %w", line, err)
		}
		metrics := parseMetrics(strings.Fields(line))
		p := point{routes: routes, p50: metrics["p50-ms"], p99: metrics["p99-ms"], reload50: metrics["reload-p50-ms"]}
		if p.p50 == 0 || p.p99 == 0 || p.reload50 == 0 {
			return nil, fmt.Errorf("line %q lacks p50-ms, p99-ms or reload-p50-ms", line)
		}
		byRoutes[routes] = p
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	if len(byRoutes) == 0 {
		return nil, errors.New("no BenchmarkReadyToRoutable result line; save the output of `make bench` there")
	}

	points := make([]point, 0, len(byRoutes))
	for _, p := range byRoutes {
		points = append(points, p)
	}
	slices.SortFunc(points, func(a, b point) int { return a.routes - b.routes })

	return points, nil
}

// parseMetrics returns the "value unit" pairs of a benchmark line's fields,
// after the name and the iteration count.
func parseMetrics(fields []string) map[string]float64 {
	metrics := map[string]float64{}
	for i := 2; i+1 < len(fields); i += 2 {
		value, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			continue
		}
		metrics[fields[i+1]] = value
	}

	return metrics
}
