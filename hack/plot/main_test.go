package main

import (
	"encoding/xml"
	"strings"
	"testing"
)

const sampleOutput = `goos: linux
BenchmarkReadyToRoutable/routes=1000-2   1  4541982010 ns/op  145.0 p50-ms  198.2 p99-ms  90.77 reload-p50-ms
BenchmarkReadyToRoutable/routes=0-2      1   538020913 ns/op   15.63 p50-ms   28.19 p99-ms   3.576 reload-p50-ms
--- BENCH: BenchmarkReadyToRoutable/routes=0-2
BenchmarkBurst/deployments=100-2         1  1986908730 ns/op  19.00 admin-writes
PASS
`

func TestParse(t *testing.T) {
	points, err := parse(strings.NewReader(sampleOutput))
	if err != nil {
		t.Fatal(err)
	}

	want := []point{
		{routes: 0, p50: 15.63, p99: 28.19, reload50: 3.576},
		{routes: 1000, p50: 145.0, p99: 198.2, reload50: 90.77},
	}
	if len(points) != len(want) {
		t.Fatalf("parse returned %d points, want %d: %+v", len(points), len(want), points)
	}
	for i := range want {
		if points[i] != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, points[i], want[i])
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		output string
	}{
		{name: "no result line", output: "goos: linux\nPASS\n"},
		{name: "missing metric", output: "BenchmarkReadyToRoutable/routes=0-2 1 5 ns/op 15.6 p50-ms 28.1 p99-ms\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parse(strings.NewReader(tt.output)); err == nil {
				t.Error("parse returned no error")
			}
		})
	}
}

func TestRenderValidSVG(t *testing.T) {
	points, err := parse(strings.NewReader(sampleOutput))
	if err != nil {
		t.Fatal(err)
	}
	svg := render(points)

	var doc struct {
		XMLName   xml.Name `xml:"svg"`
		Polylines []struct {
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("render output is not valid XML: %v", err)
	}
	if len(doc.Polylines) != len(allSeries) {
		t.Fatalf("render drew %d lines, want %d", len(doc.Polylines), len(allSeries))
	}
	for i, line := range doc.Polylines {
		if n := len(strings.Fields(line.Points)); n != len(points) {
			t.Errorf("line %d has %d points, want %d", i, n, len(points))
		}
	}
}

func TestNiceStep(t *testing.T) {
	tests := []struct {
		max  float64
		want float64
	}{
		{max: 5000, want: 1000},
		{max: 198, want: 50},
		{max: 15, want: 2},
		{max: 0, want: 1},
	}
	for _, tt := range tests {
		if got := niceStep(tt.max); got != tt.want {
			t.Errorf("niceStep(%v) = %v, want %v", tt.max, got, tt.want)
		}
	}
}
