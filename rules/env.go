package rules

import (
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"reflect"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"

	"github.com/personio-entra/personio-entra/rules/internal/hr"
)

// employeeType is the CEL type name of the `employee` variable.
const employeeType = "hr.Employee"

// costLimit bounds the work one expression may do per evaluation, so that a
// careless comprehension cannot stall the workers.
const costLimit = 1_000_000

// newEnv builds the CEL environment every rule expression is checked and
// run in. Date helpers work in the company time zone loc.
func newEnv(loc *time.Location) (*cel.Env, error) {
	str := func(name, doc string, f func(string) string) cel.EnvOption {
		return cel.Function(name,
			cel.Overload(name+"_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(v ref.Val) ref.Val { return types.String(f(string(v.(types.String)))) })),
			cel.FunctionDocs(doc))
	}
	env, err := cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[hr.Employee](), ext.ParseStructTags(true)),
		cel.Variable("employee", cel.ObjectType(employeeType)),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(),
		cel.OptionalTypes(),
		cel.Macros(cel.GlobalMacro("today", 0, func(eh cel.MacroExprFactory, _ ast.Expr, _ []ast.Expr) (ast.Expr, *common.Error) {
			return eh.NewCall("start_of_day", eh.NewIdent("now")), nil
		})),
		str("lower", "lower(s): s in lower case (all scripts)", strings.ToLower),
		str("upper", "upper(s): s in upper case (all scripts)", strings.ToUpper),
		str("trim", "trim(s): s without leading and trailing white space", strings.TrimSpace),
		str("ascii", "ascii(s): diacritics stripped (é→e, ł→l, ø→o, æ→ae, ß→ss); other non-ASCII dropped", ascii),
		str("german", "german(s): ä→ae, ö→oe, ü→ue, ß→ss, then ascii(s)", german),
		cel.Function("default",
			cel.Overload("default_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.StringType,
				cel.BinaryBinding(func(a, b ref.Val) ref.Val {
					if strings.TrimSpace(string(a.(types.String))) == "" {
						return b
					}
					return a
				})),
			cel.FunctionDocs("default(s, fallback): fallback when s is empty or blank, else s")),
		cel.Function("attr",
			cel.Overload("attr_employee_string", []*cel.Type{cel.ObjectType(employeeType), cel.StringType}, cel.StringType,
				cel.BinaryBinding(func(e, key ref.Val) ref.Val {
					v, ok := e.Value().(*hr.Employee)
					if !ok {
						return types.NewErr("attr: want the employee object, got %T", e.Value())
					}
					return types.String(v.Attr(string(key.(types.String))))
				})),
			cel.FunctionDocs(`attr(employee, "dynamic_9001") or attr(employee, "Work phone"): custom attribute value by id, else by label; "" when absent`)),
		cel.Function("date",
			cel.Overload("date_string", []*cel.Type{cel.StringType}, cel.TimestampType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					s := string(v.(types.String))
					d, err := model.ParseDate(s)
					if err != nil {
						return types.NewErr("date(%q): want YYYY-MM-DD", s)
					}
					if d.IsZero() {
						return types.NewErr(`date(""): the date is not set; test it first, e.g. employee.last_working_day != "" && ...`)
					}
					return types.Timestamp{Time: d.Start(loc)}
				})),
			cel.FunctionDocs("date(s): the first instant of the day YYYY-MM-DD in the company time zone")),
		cel.Function("start_of_day",
			cel.Overload("start_of_day_timestamp", []*cel.Type{cel.TimestampType}, cel.TimestampType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					return types.Timestamp{Time: startOfDay(v.(types.Timestamp).Time, loc)}
				})),
			cel.FunctionDocs("start_of_day(t): midnight of t's day in the company time zone; today() is start_of_day(now)")),
		cel.Function("add_days",
			cel.Overload("add_days_timestamp_int", []*cel.Type{cel.TimestampType, cel.IntType}, cel.TimestampType,
				cel.BinaryBinding(addDays(loc))),
			cel.MemberOverload("timestamp_add_days_int", []*cel.Type{cel.TimestampType, cel.IntType}, cel.TimestampType,
				cel.BinaryBinding(addDays(loc))),
			cel.FunctionDocs("add_days(t, n) or t.add_days(n): n calendar days later in the company time zone (same wall-clock time across DST)")),
		cel.Function("days_between",
			cel.Overload("days_between_timestamp_timestamp", []*cel.Type{cel.TimestampType, cel.TimestampType}, cel.IntType,
				cel.BinaryBinding(func(a, b ref.Val) ref.Val {
					return types.Int(daysBetween(a.(types.Timestamp).Time, b.(types.Timestamp).Time, loc))
				})),
			cel.FunctionDocs("days_between(a, b): calendar days from a's date to b's date in the company time zone")),
		cel.Function("format_date",
			cel.Overload("format_date_timestamp", []*cel.Type{cel.TimestampType}, cel.StringType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					return types.String(v.(types.Timestamp).Time.In(loc).Format(time.DateOnly))
				})),
			cel.FunctionDocs("format_date(t): YYYY-MM-DD of t in the company time zone")),
	)
	if err != nil {
		return nil, fmt.Errorf("rules: build CEL environment: %w", err)
	}
	return env, nil
}

func addDays(loc *time.Location) func(t, n ref.Val) ref.Val {
	return func(t, n ref.Val) ref.Val {
		days := int64(n.(types.Int))
		if days > 100_000 || days < -100_000 {
			return types.NewErr("add_days: %d days is out of range", days)
		}
		return types.Timestamp{Time: t.(types.Timestamp).Time.In(loc).AddDate(0, 0, int(days))}
	}
}

func startOfDay(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
}

// daysBetween counts calendar days between the dates of a and b in loc
// (negative when b is earlier). Counting on UTC noons keeps DST days from
// rounding wrong.
func daysBetween(a, b time.Time, loc *time.Location) int {
	a, b = a.In(loc), b.In(loc)
	da := time.Date(a.Year(), a.Month(), a.Day(), 12, 0, 0, 0, time.UTC)
	db := time.Date(b.Year(), b.Month(), b.Day(), 12, 0, 0, 0, time.UTC)
	return int(db.Sub(da).Hours() / 24)
}
