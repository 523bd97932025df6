package caddyapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// plan is the change that makes the owned routes of one routes array equal
// a desired set. It is computed without I/O.
type plan struct {
	// routes is the complete new routes array.
	routes []json.RawMessage
	// changed reports whether routes differs in content or order from the
	// array that was read, which is when a write is needed.
	changed bool
	// added, updated and removed are the owned route ids that the write
	// creates, changes and deletes, each sorted.
	added, updated, removed []string
}

// planRoutes returns the routes array in which the owned routes, those
// whose @id starts with prefix, are exactly desired, and every other route
// is the element read, in its original order.
//
// The owned routes form one block in desired's order, placed before the
// first route that is not owned. So a catch-all route that the operator put
// last stays last, and any route the operator put before the owned block
// ends up after it. Equal arrays are detected by comparing decoded JSON,
// because Caddy re-encodes what it stores with sorted keys.
func planRoutes(current []json.RawMessage, desired []route, prefix string) (plan, error) {
	// split the current array
	owned := make(map[string]json.RawMessage)
	var others []json.RawMessage
	for _, raw := range current {
		if id, ok := ownedID(raw, prefix); ok {
			owned[id] = raw
		} else {
			others = append(others, raw)
		}
	}

	// compare each desired route with the owned route of the same id
	var p plan
	p.routes = make([]json.RawMessage, 0, len(desired)+len(others))
	desiredIDs := make(map[string]bool, len(desired))
	for _, r := range desired {
		raw, err := json.Marshal(r)
		if err != nil {
			return plan{}, fmt.Errorf("encoding route %q: %w", r.ID, err)
		}
		p.routes = append(p.routes, raw)
		desiredIDs[r.ID] = true

		old, exists := owned[r.ID]
		switch {
		case !exists:
			p.added = append(p.added, r.ID)
		case !jsonEqual(old, raw):
			p.updated = append(p.updated, r.ID)
		}
	}
	for id := range owned {
		if !desiredIDs[id] {
			p.removed = append(p.removed, id)
		}
	}
	slices.Sort(p.added)
	slices.Sort(p.updated)
	slices.Sort(p.removed)

	// keep every other route, in its order
	p.routes = append(p.routes, others...)
	p.changed = !routesEqual(current, p.routes)

	return p, nil
}

// ownedID returns the @id of a route element and whether it starts with
// prefix.
func ownedID(raw json.RawMessage, prefix string) (string, bool) {
	var header routeHeader
	if err := json.Unmarshal(raw, &header); err != nil {
		return "", false
	}

	return header.ID, strings.HasPrefix(header.ID, prefix)
}

// routesEqual reports whether two routes arrays have the same elements in
// the same order, comparing the decoded JSON of each element.
func routesEqual(a, b []json.RawMessage) bool {
	return slices.EqualFunc(a, b, jsonEqual)
}

// jsonEqual reports whether a and b encode the same JSON value, regardless
// of key order and whitespace. Invalid JSON is equal only to identical
// bytes.
func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}

	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}

	return reflect.DeepEqual(va, vb)
}
