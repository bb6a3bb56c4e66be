// Command personio-entra keeps Microsoft Entra ID in step with Personio.
//
// Subcommands register themselves in commands (one file each) so that the
// dispatcher stays small.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	// run gets the arguments after the subcommand name. It returns an error
	// to print; exit status 1 (2 for usage errors, see usageError).
	run func(ctx context.Context, env *environment, args []string) error
}

// environment is what a subcommand may use from the process.
type environment struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

var commands = map[string]command{}

func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("duplicate command " + name)
	}
	commands[name] = c
}

// usageError marks an error in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &environment{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(runMain(ctx, env, os.Args[1:]))
}

func runMain(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.stderr, "personio-entra: unknown command %q\n\n", args[0])
		usage(env.stderr)
		return 2
	}
	if err := c.run(ctx, env, args[1:]); err != nil {
		if errors.Is(err, errHelpShown) {
			return 0
		}
		fmt.Fprintf(env.stderr, "personio-entra %s: %v\n", args[0], err)
		if _, ok := err.(usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: personio-entra <command> [flags]")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from the environment; see README.md.")
}
