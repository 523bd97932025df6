//go:build race

package e2eutil

// RaceEnabled reports whether this binary runs with the race detector, so
// that BuildRouter builds the router with it too.
const RaceEnabled = true
