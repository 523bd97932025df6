//go:build race

package manifests_test

// raceEnabled reports whether the tests run with the race detector, so that
// the router binary is built with it too.
const raceEnabled = true
