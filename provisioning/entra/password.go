package entra

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// Character classes of Entra's cloud password rules
// (https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy): ASCII
// only; symbols from the allowed set. Look-alike characters are left out.
const (
	pwLower   = "abcdefghijkmnopqrstuvwxyz"
	pwUpper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	pwDigits  = "23456789"
	pwSymbols = "@#$%^&*-_!+=?:.~"
	pwLength  = 24
)

// newPassword returns a random password from crypto/rand with all four
// classes (Entra needs three of four) and 24 characters (8-256 allowed).
// It is sent once in the create body and never logged or kept: onboarding
// uses a Temporary Access Pass or a reset
// (docs/graph-behaviour.md#passwords-and-temporary-access-passes).
func newPassword() (string, error) {
	all := pwLower + pwUpper + pwDigits + pwSymbols
	b := make([]byte, 0, pwLength)
	for _, set := range []string{pwLower, pwUpper, pwDigits, pwSymbols} {
		c, err := pick(set)
		if err != nil {
			return "", err
		}
		b = append(b, c)
	}
	for len(b) < pwLength {
		c, err := pick(all)
		if err != nil {
			return "", err
		}
		b = append(b, c)
	}
	// Fisher-Yates shuffle so the guaranteed classes are not at fixed places.
	for i := len(b) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("password: random: %w", err)
		}
		b[i], b[j.Int64()] = b[j.Int64()], b[i]
	}
	return string(b), nil
}

func pick(set string) (byte, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
	if err != nil {
		return 0, fmt.Errorf("password: random: %w", err)
	}
	return set[n.Int64()], nil
}
