package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"
)

// rawLengthComparisons inspects Go source for calls of
// subtle.ConstantTimeCompare whose operands are not fixed-size digests.
// ConstantTimeCompare returns at once when the lengths differ
// (https://pkg.go.dev/crypto/subtle#ConstantTimeCompare), so comparing a
// presented token with the configured one directly tells an attacker the
// token's length by timing. Each operand must be a slice of a fixed-size
// array (x[:]) whose root is a variable assigned from sha256.Sum256 /
// hmac.Sum or a field or variable declared with a fixed-size array type.
func rawLengthComparisons(filename string, src any) (violations []string, err error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, 0)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", filename, err)
	}
	fixed := map[string]bool{} // names holding fixed-size digests
	isDigestCall := func(e ast.Expr) bool {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "sha256" || pkg.Name == "sha512") && sel.Sel.Name != "New" {
			return true
		}
		return false
	}
	hasFixedArray := func(t ast.Expr) bool {
		found := false
		ast.Inspect(t, func(n ast.Node) bool {
			if at, ok := n.(*ast.ArrayType); ok && at.Len != nil {
				found = true
			}
			return !found
		})
		return found
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.AssignStmt:
			for i, rhs := range x.Rhs {
				if i < len(x.Lhs) && isDigestCall(rhs) {
					if id, ok := x.Lhs[i].(*ast.Ident); ok {
						fixed[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for i, name := range x.Names {
				if (x.Type != nil && hasFixedArray(x.Type)) || (i < len(x.Values) && isDigestCall(x.Values[i])) {
					fixed[name.Name] = true
				}
			}
		case *ast.Field:
			if hasFixedArray(x.Type) {
				for _, name := range x.Names {
					fixed[name.Name] = true
				}
			}
		}
		return true
	})
	root := func(e ast.Expr) string {
		for {
			switch x := e.(type) {
			case *ast.Ident:
				return x.Name
			case *ast.SelectorExpr:
				return x.Sel.Name
			case *ast.IndexExpr:
				e = x.X
			case *ast.ParenExpr:
				e = x.X
			default:
				return ""
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "subtle" || sel.Sel.Name != "ConstantTimeCompare" {
			return true
		}
		for _, a := range call.Args {
			s, ok := a.(*ast.SliceExpr)
			if !ok || s.Low != nil || s.High != nil || !fixed[root(s.X)] {
				violations = append(violations, fmt.Sprintf("%s: subtle.ConstantTimeCompare on an operand that is not a fixed-size digest (its length leaks)", fset.Position(a.Pos())))
			}
		}
		return true
	})
	return violations, nil
}

// The inspection catches a comparison of raw tokens of different length
// and accepts digest comparisons.
func TestRawLengthInspector(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want int
	}{
		{"raw tokens", `func f(got, want []byte) bool { return subtle.ConstantTimeCompare(got, want) == 1 }`, 2},
		{"converted strings", `func f(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }`, 2},
		{"one side digested", `func f(a string, want []byte) bool { got := sha256.Sum256([]byte(a)); return subtle.ConstantTimeCompare(got[:], want) == 1 }`, 1},
		{"digests", `func f(a, b string) bool { x := sha256.Sum256([]byte(a)); y := sha256.Sum256([]byte(b)); return subtle.ConstantTimeCompare(x[:], y[:]) == 1 }`, 0},
		{"stored digest field", `type r struct{ digests [][sha256.Size]byte }
func (w r) f(a string) bool { got := sha256.Sum256([]byte(a)); return subtle.ConstantTimeCompare(got[:], w.digests[0][:]) == 1 }`, 0},
		{"sliced byte slice", `func f(a, b []byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }`, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := rawLengthComparisons("snippet.go", "package p\n"+tc.src+"\n")
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != tc.want {
				t.Errorf("violations %v, want %d", v, tc.want)
			}
		})
	}
}

// The webhook and admin tokens are compared as SHA-256 digests, so that
// neither comparison leaks the configured token's length.
func TestTokenComparisonsHideLength(t *testing.T) {
	for _, file := range []string{"../../handlers/webhook.go", "../../handlers/admin.go"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			v, err := rawLengthComparisons(file, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range v {
				t.Error(s)
			}
		})
	}
}
