package queue

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
)

// Subject layout (docs/jetstream.md#subjects). Every
// subject lives under one prefix so that the event stream, the dead-letter
// stream and the audit stream never overlap.
//
//	pe.in.person.<person>.<kind>     person work, as published (ingest side)
//	pe.p.<k>.person.<person>.<kind>  the same message as stored: the stream's
//	                                 subject transform inserts the partition k
//	pe.in.employment.<employment>    employment event without a person id,
//	                                 turned into person work by the Resolver
//	pe.sched.person.<person>         the one pending message schedule per person
//	pe.dlq.<original subject>        dead letters
//	pe.audit.person.<person>         audit records
const (
	subjectPrefix        = "pe"
	ingestPersonPrefix   = subjectPrefix + ".in.person."
	ingestEmploymentPref = subjectPrefix + ".in.employment."
	schedulePrefix       = subjectPrefix + ".sched.person."
	dlqPrefix            = subjectPrefix + ".dlq."
	auditPrefix          = subjectPrefix + ".audit.person."
	partitionedPrefix    = subjectPrefix + ".p."
)

// Kinds: the last token of a person-work subject. The reason itself travels
// in a header, the kind only keeps the subject readable in `nats` tooling.
const (
	kindEvent      = "event"
	kindSchedule   = "schedule"
	kindEnqueue    = "enqueue"
	kindRedrive    = "redrive"
	kindEmployment = "employment"
)

const maxIDLength = 256

// ErrInvalidID is returned for an empty or overlong person or employment id.
var ErrInvalidID = errors.New("invalid id")

// encodeToken turns an id into one subject token. Ids made only of
// [A-Za-z0-9_-] (Personio's numeric person ids and UUID employment ids) are
// used as they are, so subjects stay readable; anything else is hex-encoded
// behind a '~', a character that never appears in a plain token, so the
// mapping is injective and reversible (tokens must not contain '.', '*', '>'
// or whitespace: docs/jetstream.md#subjects-and-partitions).
func encodeToken(id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > maxIDLength {
		return "", fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidID, len(id), maxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "~" + hex.EncodeToString([]byte(id)), nil
		}
	}
	return id, nil
}

// decodeToken reverses encodeToken.
func decodeToken(tok string) (string, error) {
	if rest, ok := strings.CutPrefix(tok, "~"); ok {
		b, err := hex.DecodeString(rest)
		if err != nil || len(b) == 0 {
			return "", fmt.Errorf("%w: subject token %q is not a valid encoded id", ErrInvalidID, tok)
		}
		return string(b), nil
	}
	if tok == "" {
		return "", fmt.Errorf("%w: empty subject token", ErrInvalidID)
	}
	return tok, nil
}

func personSubject(personID, kind string) (string, error) {
	tok, err := encodeToken(personID)
	if err != nil {
		return "", fmt.Errorf("person id: %w", err)
	}
	return ingestPersonPrefix + tok + "." + kind, nil
}

func employmentSubject(employmentID string) (string, error) {
	tok, err := encodeToken(employmentID)
	if err != nil {
		return "", fmt.Errorf("employment id: %w", err)
	}
	return ingestEmploymentPref + tok, nil
}

func scheduleSubject(personID string) (string, error) {
	tok, err := encodeToken(personID)
	if err != nil {
		return "", fmt.Errorf("person id: %w", err)
	}
	return schedulePrefix + tok, nil
}

func auditSubject(personID string) (string, error) {
	tok, err := encodeToken(personID)
	if err != nil {
		return "", fmt.Errorf("person id: %w", err)
	}
	return auditPrefix + tok, nil
}

// workTarget is what a stored work message is about.
type workTarget struct {
	personID     string // set for person work
	employmentID string // set for an unresolved employment event
	kind         string
}

// parseWorkSubject understands both the stored (partitioned) person subject,
// the ingest person subject and the employment subject.
func parseWorkSubject(subj string) (workTarget, error) {
	t := strings.Split(subj, ".")
	switch {
	case len(t) == 6 && t[0] == subjectPrefix && t[1] == "p" && t[3] == "person":
		id, err := decodeToken(t[4])
		return workTarget{personID: id, kind: t[5]}, err
	case len(t) == 5 && t[0] == subjectPrefix && t[1] == "in" && t[2] == "person":
		id, err := decodeToken(t[3])
		return workTarget{personID: id, kind: t[4]}, err
	case len(t) == 4 && t[0] == subjectPrefix && t[1] == "in" && t[2] == "employment":
		id, err := decodeToken(t[3])
		return workTarget{employmentID: id, kind: kindEmployment}, err
	}
	return workTarget{}, fmt.Errorf("subject %q is not a work subject", subj)
}

// partitionTransform is the stream's subject transform
// (docs/jetstream.md#subjects-and-partitions): the server hashes the person token
// (FNV-1a 32 mod P) so every message for one person lands in one partition.
func partitionTransform(partitions int) (source, destination string) {
	return ingestPersonPrefix + "*.*",
		fmt.Sprintf("%s{{partition(%d,1)}}.person.{{wildcard(1)}}.{{wildcard(2)}}", partitionedPrefix, partitions)
}

// partitionOf computes on the client the partition the server's transform
// picks (it matches the server's getHashPartition, checked by
// TestPartitionMatchesServerTransform; docs/jetstream.md#subjects-and-partitions).
func partitionOf(personID string, partitions int) (int, error) {
	tok, err := encodeToken(personID)
	if err != nil {
		return 0, err
	}
	h := fnv.New32a()
	h.Write([]byte(tok))
	return int(h.Sum32() % uint32(partitions)), nil
}

func partitionFilter(k int) string { return fmt.Sprintf("%s%d.>", partitionedPrefix, k) }

func partitionConsumerName(k int) string { return fmt.Sprintf("person-p%03d", k) }
