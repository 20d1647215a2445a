package consul

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Scanning the node dump. A verification reads the whole catalog as one
// JSON answer (about 136 MB at 10,000 services × 10 instances) and keeps
// four fields of each service instance. encoding/json spends most of its
// time on the fields it then drops; this scanner reads the bytes once,
// keeps the node's name and each instance's ID, Service, PeerName and
// ModifyIndex, and skips every other value by counting brackets. Keys match
// as encoding/json matches them (exactly or ignoring case, the last one
// wins), and a string with an escape or a byte outside ASCII is decoded by
// encoding/json, so it reads what encoding/json reads from any answer
// encoding/json accepts (FuzzSumDump).

var errDumpSyntax = errors.New("invalid JSON")

// dumpScanner reads a node dump from src, through buf.
type dumpScanner struct {
	src      io.Reader
	buf      []byte
	pos, end int    // buf[pos:end] is read and not yet scanned
	raw      []byte // the string being read
}

// readByte returns the next byte.
func (s *dumpScanner) readByte() (byte, error) {
	if s.pos == s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	c := s.buf[s.pos]
	s.pos++
	return c, nil
}

// unreadByte puts back the byte readByte returned last.
func (s *dumpScanner) unreadByte() { s.pos-- }

// fill reads more of the answer into buf; at its end it returns
// io.ErrUnexpectedEOF: a dump ends only with its closing bracket.
func (s *dumpScanner) fill() error {
	// Keep the last byte, for unreadByte.
	if s.end > 0 {
		s.buf[0] = s.buf[s.end-1]
		s.pos, s.end = 1, 1
	}
	for {
		n, err := s.src.Read(s.buf[s.end:])
		s.end += n
		if n > 0 {
			return nil
		}
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
}

// sumDump reads a node dump and adds each instance's write hash to its
// service's sum in writes. Instances imported from a peer are not the
// scope's.
func sumDump(body io.Reader, writes map[string]uint64) error {
	s := dumpScanner{src: body, buf: make([]byte, 64<<10)}
	if c, err := s.next(); err != nil || c != '[' {
		return fmt.Errorf("node dump: not a list (%v)", err)
	}
	err := s.list(func(c byte) error {
		if c == 'n' {
			return s.literal("null")
		}
		if c != '{' {
			return errDumpSyntax
		}
		return s.node(writes)
	})
	if err != nil {
		return fmt.Errorf("node dump: %w", err)
	}
	return nil
}

// node reads a node object, its '{' read, and sums its instances.
func (s *dumpScanner) node(writes map[string]uint64) error {
	var name string
	var services []dumpService
	err := s.object(func(key string, c byte) error {
		switch {
		case strings.EqualFold(key, "Node"):
			v, err := s.stringValue(c)
			if err == nil && c != 'n' {
				name = v
			}
			return err
		case strings.EqualFold(key, "Services"):
			services = services[:0]
			if c == 'n' {
				services = nil
				return s.literal("null")
			}
			if c != '[' {
				return errDumpSyntax
			}
			return s.list(func(c byte) error {
				var d dumpService
				if c == 'n' {
					services = append(services, d)
					return s.literal("null")
				}
				if c != '{' {
					return errDumpSyntax
				}
				if err := s.service(&d); err != nil {
					return err
				}
				services = append(services, d)
				return nil
			})
		}
		return s.skip(c)
	})
	if err != nil {
		return err
	}
	for _, d := range services {
		if d.PeerName == "" {
			writes[d.Service] += instanceWrite(name, d.ID, d.ModifyIndex)
		}
	}
	return nil
}

// service reads an instance object, its '{' read.
func (s *dumpScanner) service(d *dumpService) error {
	return s.object(func(key string, c byte) error {
		var field *string
		switch {
		case strings.EqualFold(key, "ID"):
			field = &d.ID
		case strings.EqualFold(key, "Service"):
			field = &d.Service
		case strings.EqualFold(key, "PeerName"):
			field = &d.PeerName
		case strings.EqualFold(key, "ModifyIndex"):
			if c == 'n' {
				return s.literal("null")
			}
			n, err := s.uint(c)
			d.ModifyIndex = n
			return err
		default:
			return s.skip(c)
		}
		v, err := s.stringValue(c)
		if err == nil && c != 'n' {
			*field = v
		}
		return err
	})
}

// next returns the next byte that is not white space.
func (s *dumpScanner) next() (byte, error) {
	for {
		for s.pos < s.end {
			c := s.buf[s.pos]
			s.pos++
			switch c {
			case ' ', '\t', '\n', '\r':
				continue
			}
			return c, nil
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
}

// list calls elem with the first byte of each element of a list whose '['
// was read, and reads its ']'.
func (s *dumpScanner) list(elem func(c byte) error) error {
	c, err := s.next()
	if err != nil || c == ']' {
		return err
	}
	for {
		if err := elem(c); err != nil {
			return err
		}
		var done bool
		if c, done, err = s.more(']'); done || err != nil {
			return err
		}
	}
}

// object calls member with each key of an object whose '{' was read and the
// first byte of its value, and reads its '}'.
func (s *dumpScanner) object(member func(key string, c byte) error) error {
	c, err := s.next()
	if err != nil || c == '}' {
		return err
	}
	for {
		if c != '"' {
			return errDumpSyntax
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if c, err = s.next(); err != nil {
			return err
		}
		if c != ':' {
			return errDumpSyntax
		}
		if c, err = s.next(); err != nil {
			return err
		}
		if err := member(key, c); err != nil {
			return err
		}
		var done bool
		if c, done, err = s.more('}'); done || err != nil {
			return err
		}
	}
}

// more reads what follows an element of a list or object that ends with
// end: done at its end, else a comma and the first byte of the next.
func (s *dumpScanner) more(end byte) (c byte, done bool, err error) {
	switch c, err = s.next(); {
	case err != nil:
		return 0, false, err
	case c == end:
		return 0, true, nil
	case c != ',':
		return 0, false, errDumpSyntax
	}
	c, err = s.next()
	return c, false, err
}

// stringValue reads a string, or null (as ""), whose first byte is c.
func (s *dumpScanner) stringValue(c byte) (string, error) {
	switch c {
	case '"':
		return s.str()
	case 'n':
		return "", s.literal("null")
	}
	return "", errDumpSyntax
}

// str reads a string whose opening quote was read.
func (s *dumpScanner) str() (string, error) {
	s.raw = append(s.raw[:0], '"')
	plain := true
	for {
		c, err := s.readByte()
		if err != nil {
			return "", err
		}
		s.raw = append(s.raw, c)
		switch {
		case c == '"':
			if plain {
				return string(s.raw[1 : len(s.raw)-1]), nil
			}
			var v string
			if err := json.Unmarshal(s.raw, &v); err != nil {
				return "", errDumpSyntax
			}
			return v, nil
		case c == '\\':
			plain = false
			c, err := s.readByte()
			if err != nil {
				return "", err
			}
			s.raw = append(s.raw, c)
		case c < 0x20:
			return "", errDumpSyntax
		case c >= 0x80:
			plain = false
		}
	}
}

// uint reads a number whose first byte is c, as encoding/json reads it
// into a uint64.
func (s *dumpScanner) uint(c byte) (uint64, error) {
	digits := []byte{c}
	for {
		b, err := s.readByte()
		if err != nil {
			return 0, err
		}
		if b < '0' || b > '9' {
			s.unreadByte()
			break
		}
		digits = append(digits, b)
	}
	if len(digits) > 1 && digits[0] == '0' {
		return 0, errDumpSyntax
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return 0, errDumpSyntax
	}
	return n, nil
}

// literal reads the rest of word, whose first byte was read.
func (s *dumpScanner) literal(word string) error {
	for i := 1; i < len(word); i++ {
		c, err := s.readByte()
		if err != nil {
			return err
		}
		if c != word[i] {
			return errDumpSyntax
		}
	}
	return nil
}

// skip reads a value whose first byte is c, without keeping it: strings
// are read to their closing quote, lists and objects to their closing
// bracket, and anything else to the byte that ends it.
func (s *dumpScanner) skip(c byte) error {
	switch c {
	case '"':
		return s.skipString()
	case '{', '[':
	default:
		for {
			b, err := s.readByte()
			if err != nil {
				return err
			}
			switch b {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				s.unreadByte()
				return nil
			case '"', '{', '[', ':':
				return errDumpSyntax
			}
		}
	}
	depth := 1
	for {
		for s.pos < s.end {
			c := s.buf[s.pos]
			s.pos++
			switch c {
			case '"':
				if err := s.skipString(); err != nil {
					return err
				}
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return nil
				}
			}
		}
		if err := s.fill(); err != nil {
			return err
		}
	}
}

// skipString reads to the end of a string whose opening quote was read.
func (s *dumpScanner) skipString() error {
	for {
		for s.pos < s.end {
			c := s.buf[s.pos]
			s.pos++
			switch c {
			case '"':
				return nil
			case '\\':
				if _, err := s.readByte(); err != nil {
					return err
				}
			}
		}
		if err := s.fill(); err != nil {
			return err
		}
	}
}
