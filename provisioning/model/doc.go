// Package model is the domain the rest of the product shares: the
// normalised Employee record (what HR knows about a person and their current
// employment), calendar dates, the Personio event names, person-id
// validation and the Entra user properties the rules may set.
//
// It imports nothing of the product. The rules, the engine, the receiver and
// both adapters (Personio, Entra) import it; no adapter type leaks into the
// rules or the engine.
package model
