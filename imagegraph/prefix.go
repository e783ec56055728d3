package imagegraph

import (
	"fmt"

	"github.com/pkg/errors"
)

// PrefixScanner judges a manifest or index while its bytes arrive, so that
// a writer learns at the write that sent them that its bytes can no longer
// become one (`echo junk > images/x` fails in the shell, not at a close the
// shell ignores). Write takes the bytes in order, each once, and fails as
// soon as they cannot begin a JSON object: what Parse decides needs the
// whole document, but no ending makes a JSON syntax error valid. It costs
// a few bytes of state and constant time per byte, whatever the number of
// writes. The zero value expects the first byte.
type PrefixScanner struct {
	state  scanState
	stack  []byte // the open '{' and '[' around the current value
	inKey  bool   // the string being read is an object's key
	lit    string // the rest of the literal true, false or null being read
	hex    int    // the \u escape's hex digits still to come
	offset int64  // bytes scanned
	err    error  // the first error: every later Write returns it
}

type scanState uint8

const (
	scanValue        scanState = iota // a value, or whitespace before it
	scanKeyOrClose                    // after '{': a key, or '}'
	scanKey                           // after ',' in an object: a key
	scanColon                         // after a key
	scanAfterValue                    // ',' or the closing bracket
	scanValueOrClose                  // after '[': a value, or ']'
	scanString                        // inside a string
	scanEscape                        // after '\' in a string
	scanUnicode                       // the hex digits of \u
	scanLiteral                       // inside true, false or null
	scanMinus                         // after a number's '-'
	scanZero                          // a number's leading 0
	scanInt                           // a number's integer digits
	scanDot                           // after a number's '.'
	scanFraction                      // a number's fraction digits
	scanExp                           // after a number's 'e'
	scanExpSign                       // after the exponent's sign
	scanExpDigits                     // the exponent's digits
	scanDone                          // after the document: whitespace only
)

// Write scans the next bytes. The error (plain, as Parse's: the caller
// adds the kind and the object) names the offset and what was wrong.
func (s *PrefixScanner) Write(p []byte) error {
	if s.err != nil {
		return s.err
	}
	for _, c := range p {
		if err := s.step(c); err != nil {
			s.err = errors.Errorf("not valid manifest JSON: %v at byte %d", err, s.offset)
			return s.err
		}
		s.offset++
	}
	return nil
}

// Complete says that the bytes scanned so far are one whole JSON object
// (Parse may still refuse what it says).
func (s *PrefixScanner) Complete() bool {
	if s.err != nil {
		return false
	}
	return s.state == scanDone
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	return "'" + printable(c) + "'"
}

func printable(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("\\x%02x", c)
	}
	return string(rune(c))
}

func (s *PrefixScanner) step(c byte) error {
	switch s.state {
	case scanValue, scanValueOrClose:
		if isSpace(c) {
			return nil
		}
		if s.state == scanValueOrClose && c == ']' {
			return s.close()
		}
		return s.beginValue(c)
	case scanKeyOrClose, scanKey:
		switch {
		case isSpace(c):
			return nil
		case c == '"':
			s.state, s.inKey = scanString, true
			return nil
		case c == '}' && s.state == scanKeyOrClose:
			return s.close()
		}
		return errors.Errorf("invalid character %s looking for beginning of object key string", quoteChar(c))
	case scanColon:
		switch {
		case isSpace(c):
			return nil
		case c == ':':
			s.state = scanValue
			return nil
		}
		return errors.Errorf("invalid character %s after object key", quoteChar(c))
	case scanAfterValue:
		top := s.stack[len(s.stack)-1]
		switch {
		case isSpace(c):
			return nil
		case c == ',' && top == '{':
			s.state = scanKey
			return nil
		case c == ',':
			s.state = scanValue
			return nil
		case c == '}' && top == '{', c == ']' && top == '[':
			return s.close()
		}
		if top == '{' {
			return errors.Errorf("invalid character %s after object key:value pair", quoteChar(c))
		}
		return errors.Errorf("invalid character %s after array element", quoteChar(c))
	case scanString:
		switch {
		case c == '"':
			if s.inKey {
				s.state, s.inKey = scanColon, false
				return nil
			}
			return s.endValue()
		case c == '\\':
			s.state = scanEscape
			return nil
		case c < 0x20:
			return errors.Errorf("invalid character %s in string literal", quoteChar(c))
		}
		return nil
	case scanEscape:
		switch c {
		case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
			s.state = scanString
			return nil
		case 'u':
			s.state, s.hex = scanUnicode, 4
			return nil
		}
		return errors.Errorf("invalid character %s in string escape code", quoteChar(c))
	case scanUnicode:
		if !isHex(c) {
			return errors.Errorf("invalid character %s in \\u hexadecimal character escape", quoteChar(c))
		}
		if s.hex--; s.hex == 0 {
			s.state = scanString
		}
		return nil
	case scanLiteral:
		if c != s.lit[0] {
			return errors.Errorf("invalid character %s in literal (expecting %s)", quoteChar(c), quoteChar(s.lit[0]))
		}
		if s.lit = s.lit[1:]; s.lit == "" {
			return s.endValue()
		}
		return nil
	case scanMinus:
		switch {
		case c == '0':
			s.state = scanZero
			return nil
		case '1' <= c && c <= '9':
			s.state = scanInt
			return nil
		}
		return errors.Errorf("invalid character %s in numeric literal", quoteChar(c))
	case scanInt, scanZero:
		switch {
		case '0' <= c && c <= '9' && s.state == scanInt:
			return nil
		case c == '.':
			s.state = scanDot
			return nil
		case c == 'e' || c == 'E':
			s.state = scanExp
			return nil
		}
		return s.endNumber(c)
	case scanDot:
		if '0' <= c && c <= '9' {
			s.state = scanFraction
			return nil
		}
		return errors.Errorf("invalid character %s after decimal point in numeric literal", quoteChar(c))
	case scanFraction:
		switch {
		case '0' <= c && c <= '9':
			return nil
		case c == 'e' || c == 'E':
			s.state = scanExp
			return nil
		}
		return s.endNumber(c)
	case scanExp:
		if c == '+' || c == '-' {
			s.state = scanExpSign
			return nil
		}
		fallthrough
	case scanExpSign:
		if '0' <= c && c <= '9' {
			s.state = scanExpDigits
			return nil
		}
		return errors.Errorf("invalid character %s in exponent of numeric literal", quoteChar(c))
	case scanExpDigits:
		if '0' <= c && c <= '9' {
			return nil
		}
		return s.endNumber(c)
	case scanDone:
		if isSpace(c) {
			return nil
		}
		return errors.Errorf("invalid character %s after top-level value", quoteChar(c))
	}
	return errors.Errorf("scanner in unknown state %d", s.state)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// beginValue starts the value whose first byte is c. The top level must
// be an object.
func (s *PrefixScanner) beginValue(c byte) error {
	if len(s.stack) == 0 && c != '{' {
		return errors.Errorf("invalid character %s: a manifest or index is a JSON object", quoteChar(c))
	}
	switch {
	case c == '{' || c == '[':
		if len(s.stack) >= maxJSONDepth {
			return errors.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
		}
		s.stack = append(s.stack, c)
		if c == '{' {
			s.state = scanKeyOrClose
		} else {
			s.state = scanValueOrClose
		}
	case c == '"':
		s.state = scanString
	case c == 't':
		s.state, s.lit = scanLiteral, "rue"
	case c == 'f':
		s.state, s.lit = scanLiteral, "alse"
	case c == 'n':
		s.state, s.lit = scanLiteral, "ull"
	case c == '-':
		s.state = scanMinus
	case c == '0':
		s.state = scanZero
	case '1' <= c && c <= '9':
		s.state = scanInt
	default:
		return errors.Errorf("invalid character %s looking for beginning of value", quoteChar(c))
	}
	return nil
}

// close ends the object or array c closes (the caller checked it matches).
func (s *PrefixScanner) close() error {
	s.stack = s.stack[:len(s.stack)-1]
	return s.endValue()
}

// endValue follows a complete value.
func (s *PrefixScanner) endValue() error {
	if len(s.stack) == 0 {
		s.state = scanDone
	} else {
		s.state = scanAfterValue
	}
	return nil
}

// endNumber ends a number at c, the byte after it, which is then read as
// what follows a value. (A number is never at the top level.)
func (s *PrefixScanner) endNumber(c byte) error {
	if err := s.endValue(); err != nil {
		return err
	}
	return s.step(c)
}
