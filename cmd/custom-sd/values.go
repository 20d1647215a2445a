package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/kingpin/v2"
)

// kingpin's own enum reports a bad value without naming the flag. This one
// names it, so a bad flag always gives one line that says which flag and
// what is wrong. (The --consul.* and --output.* flags are checked as the
// configuration file's keys are: see flags.go.)

type enumValue struct {
	flag    string
	allowed []string
	dst     *string
}

func (v enumValue) Set(s string) error {
	if !slices.Contains(v.allowed, s) {
		return fmt.Errorf("--%s: %q is not one of %s", v.flag, s, strings.Join(v.allowed, ", "))
	}
	*v.dst = s
	return nil
}

func (v enumValue) String() string { return *v.dst }

func enumFlag(app *kingpin.Application, name, help, def string, dst *string, allowed ...string) {
	app.Flag(name, help).Default(def).SetValue(enumValue{name, allowed, dst})
}
