package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/custom-sd/custom-sd/adapter"
)

// Error is an invalid setting: where it is, and what is wrong with it.
// Error() names it as the configuration file does; Flags() as the command
// line does.
type Error struct {
	// Section is where the key is: "consul", "consuls.<name>",
	// "jobs[<name>]", or "" at the top of the file.
	Section string
	// Key is the key within its section, as the file spells it
	// ("output.mode"); "" for the section as a whole.
	Key string
	// Line is the key's line in the file, or 0 when not known.
	Line int
	// Msg says what is wrong. It may name other keys of the section in
	// braces, "needs {tls_config.key_file}", rendered like Key.
	Msg string
}

func (e *Error) Error() string {
	where := e.Section
	switch {
	case where == "":
		where = e.Key
	case e.Key != "":
		where += "." + e.Key
	}
	if where == "" {
		where = "configuration"
	}
	if e.Line > 0 {
		where += fmt.Sprintf(": line %d", e.Line)
	}
	return where + ": " + render(e.Msg, func(key string) string { return key })
}

// Flags renders the error under the command line's flag names.
func (e *Error) Flags() string {
	where := FlagOf(e.Key)
	if where == "" {
		where = e.Section
	}
	return where + ": " + render(e.Msg, FlagOf)
}

// FlagError renders err under the command line's names when it is an
// *Error, and leaves it as it is otherwise.
func FlagError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return errors.New(e.Flags())
	}
	return err
}

// render replaces every {key} in msg by name(key).
func render(msg string, name func(string) string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(msg, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(msg[open+1:], '}')
		if end < 0 {
			break
		}
		b.WriteString(msg[:open])
		b.WriteString(name(msg[open+1 : open+1+end]))
		msg = msg[open+1+end+1:]
	}
	b.WriteString(msg)
	return b.String()
}

// keyErr is an error of key in no section yet; in puts it in one.
func keyErr(key, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// in puts an error of a key into section; an error that is not an *Error
// becomes one of the section as a whole.
func in(section string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return &Error{Section: section, Msg: err.Error()}
	}
	e.Section = section
	return e
}

// fromField turns a library's *adapter.FieldError into an *Error naming the
// file's keys: the libraries validate themselves and name their own fields.
func fromField(err error) error {
	var fe *adapter.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	msg := fe.Format(func(field string) string { return "{" + keyOfField(field) + "}" })
	_, msg, _ = strings.Cut(msg, ": ")
	return &Error{Key: keyOfField(fe.Field), Msg: msg}
}
