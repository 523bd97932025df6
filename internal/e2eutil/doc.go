// Package e2eutil runs the router binary in end-to-end tests on the test
// bed. It builds the binary, with the race detector when the tests run with
// it. It starts, kills and restarts the router process on a fixed health
// address and reads its /healthz and /readyz. It also reads back the routes
// that the router wrote into a Caddy of the test bed.
//
// Only test code imports this package.
package e2eutil
