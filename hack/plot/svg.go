package main

import (
	"fmt"
	"math"
	"strings"
)

// Plot geometry in SVG user units.
const (
	width        = 760
	height       = 460
	marginLeft   = 70
	marginRight  = 30
	marginTop    = 50
	marginBottom = 60
)

// series is one line of the plot.
type series struct {
	label string
	color string
	// dash is the SVG stroke-dasharray, or "" for a solid line.
	dash  string
	value func(point) float64
}

// goalFactor is the goal for the p50 latency: at most this many times the
// p50 of a bare admin API reload at the same route count.
const goalFactor = 1.3

var allSeries = []series{
	{label: "Ready to routable, p50", color: "#1f77b4", value: func(p point) float64 { return p.p50 }},
	{label: "Ready to routable, p99", color: "#ff7f0e", dash: "6 4", value: func(p point) float64 { return p.p99 }},
	{label: "bare reload, p50", color: "#555555", value: func(p point) float64 { return p.reload50 }},
	{label: fmt.Sprintf("goal: %.1f x bare reload p50", goalFactor), color: "#2ca02c", dash: "2 4", value: func(p point) float64 { return goalFactor * p.reload50 }},
}

// render returns the SVG document of the plot of points, which must not be
// empty.
func render(points []point) string {
	// the axes' ranges
	maxX := float64(points[len(points)-1].routes)
	maxY := 0.0
	for _, p := range points {
		for _, s := range allSeries {
			maxY = math.Max(maxY, s.value(p))
		}
	}
	xStep, yStep := niceStep(maxX), niceStep(maxY)
	maxX = math.Max(xStep, math.Ceil(maxX/xStep)*xStep)
	maxY = math.Max(yStep, math.Ceil(maxY/yStep)*yStep)

	plotW := float64(width - marginLeft - marginRight)
	plotH := float64(height - marginTop - marginBottom)
	x := func(v float64) float64 { return marginLeft + v/maxX*plotW }
	y := func(v float64) float64 { return marginTop + plotH - v/maxY*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" text-anchor="middle">Pod Ready to first 200 through Caddy, by routes in Caddy's config</text>`+"\n", width/2)

	// grid, ticks and axis labels
	for v := 0.0; v <= maxX+xStep/2; v += xStep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", x(v), marginTop, x(v), y(0))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n", x(v), y(0)+18, v)
	}
	for v := 0.0; v <= maxY+yStep/2; v += yStep {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", marginLeft, y(v), x(maxX), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", marginLeft-8, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", marginLeft, y(0), x(maxX), y(0))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="black"/>`+"\n", marginLeft, marginTop, marginLeft, y(0))
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">routes in Caddy's config</text>`+"\n", x(maxX/2), height-15)
	fmt.Fprintf(&b, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">milliseconds</text>`+"\n", y(maxY/2), y(maxY/2))

	// one polyline with markers per series
	for _, s := range allSeries {
		coords := make([]string, len(points))
		for i, p := range points {
			coords[i] = fmt.Sprintf("%.1f,%.1f", x(float64(p.routes)), y(s.value(p)))
		}
		dash := ""
		if s.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", s.color, dash, strings.Join(coords, " "))
		for _, c := range coords {
			cx, cy, _ := strings.Cut(c, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", cx, cy, s.color)
		}
	}

	// legend
	for i, s := range allSeries {
		ly := marginTop + 10 + 18*i
		dash := ""
		if s.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", marginLeft+15, ly, marginLeft+45, ly, s.color, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", marginLeft+52, ly+4, s.label)
	}

	b.WriteString("</svg>\n")

	return b.String()
}

// niceStep returns a tick step of 1, 2 or 5 times a power of ten that cuts
// 0..maxValue into at most about eight parts.
func niceStep(maxValue float64) float64 {
	if maxValue <= 0 {
		return 1
	}

	raw := maxValue / 8
	magnitude := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, factor := range []float64{1, 2, 5, 10} {
		if factor*magnitude >= raw {
			return factor * magnitude
		}
	}

	return 10 * magnitude
}
