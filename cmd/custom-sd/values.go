package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// kingpin's own value types report a bad value without naming the flag
// ("strconv.ParseFloat: parsing ..."). These name it, so a bad flag always
// gives one line that says which flag and what is wrong.

type durationValue struct {
	flag string
	dst  *time.Duration
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("--%s: %q is not a duration such as 500ms or 5m", v.flag, s)
	}
	*v.dst = d
	return nil
}

func (v durationValue) String() string { return v.dst.String() }

type intValue struct {
	flag string
	dst  *int
}

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("--%s: %q is not a whole number", v.flag, s)
	}
	*v.dst = n
	return nil
}

func (v intValue) String() string { return strconv.Itoa(*v.dst) }

type ratioValue struct {
	flag string
	dst  *float64
}

func (v ratioValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0 && f <= 1) {
		return fmt.Errorf("--%s: %q is not a share between 0 and 1, such as 0.5", v.flag, s)
	}
	*v.dst = f
	return nil
}

func (v ratioValue) String() string { return strconv.FormatFloat(*v.dst, 'g', -1, 64) }

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

func durationFlag(app *kingpin.Application, name, help string, def time.Duration, dst *time.Duration) {
	app.Flag(name, help).Default(def.String()).SetValue(durationValue{name, dst})
}

func intFlag(app *kingpin.Application, name, help string, def int, dst *int) {
	app.Flag(name, help).Default(strconv.Itoa(def)).SetValue(intValue{name, dst})
}

func ratioFlag(app *kingpin.Application, name, help string, def float64, dst *float64) {
	app.Flag(name, help).Default(strconv.FormatFloat(def, 'g', -1, 64)).SetValue(ratioValue{name, dst})
}

func enumFlag(app *kingpin.Application, name, help, def string, dst *string, allowed ...string) {
	app.Flag(name, help).Default(def).SetValue(enumValue{name, allowed, dst})
}
