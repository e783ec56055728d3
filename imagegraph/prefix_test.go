package imagegraph

import (
	"encoding/json"
	"strings"
	"testing"
)

// The prefix scanner refuses the first byte no ending can make valid, and
// names it; every prefix of a document Parse reads passes.
func TestPrefixScanner(t *testing.T) {
	for _, tc := range []struct {
		data string
		want string // "" accepted; else in the message
	}{
		{``, ""},
		{"  \n\t{", ""},
		{`{"schemaVersion":2,"config":{"size":1`, ""},
		{`{"a":[1,-0.5e+3,true,false,null,"x\u00e9\n"],"b":{}}`, ""},
		{`{"a":1}  ` + "\n", ""},
		{`{"a":"tr`, ""},
		{`{"a":tr`, ""},
		{`{"a":1.`, ""},
		{`{"a":"\u00`, ""},
		{"junk\n", `invalid character 'j': a manifest or index is a JSON object at byte 0`},
		{"x\n", `invalid character 'x': a manifest or index is a JSON object at byte 0`},
		{`[]`, `invalid character '[': a manifest or index is a JSON object`},
		{`{"a":1}x`, `invalid character 'x' after top-level value at byte 7`},
		{`{"a":1}{}`, `after top-level value`},
		{`{a`, `looking for beginning of object key string at byte 1`},
		{`{"a" 1`, `after object key`},
		{`{"a":1 "b"`, `after object key:value pair`},
		{`{"a":[1 2`, `after array element`},
		{`{"a":[1,]`, `looking for beginning of value`},
		{`{"a":tru }`, `in literal (expecting 'e')`},
		{`{"a":01`, `after object key:value pair`},
		{`{"a":-x`, `in numeric literal`},
		{`{"a":1.e`, `after decimal point`},
		{`{"a":1e}`, `in exponent`},
		{"{\"a\":\"x\ny\"}", `in string literal`},
		{`{"a":"\x"}`, `in string escape code`},
		{`{"a":"\u00g0"}`, `hexadecimal character escape`},
		{`{"a":[}`, `looking for beginning of value`},
		{`{"a":{]`, `looking for beginning of object key string`},
		{`{"a":` + strings.Repeat("[", maxJSONDepth), `nested deeper than`},
	} {
		var s PrefixScanner
		err := s.Write([]byte(tc.data))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: refused: %v", tc.data, err)
		case tc.want != "" && err == nil:
			t.Errorf("%q: accepted, want an error with %q", tc.data, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%q: error %q, want it to contain %q", tc.data, err, tc.want)
		}
		// Byte by byte, the same answer; and once refused, always.
		var bytewise PrefixScanner
		var berr error
		for i := range len(tc.data) {
			berr = bytewise.Write([]byte{tc.data[i]})
		}
		if (berr == nil) != (err == nil) || (err != nil && berr.Error() != err.Error()) {
			t.Errorf("%q: byte by byte %v, at once %v", tc.data, berr, err)
		}
		if err != nil && s.Write([]byte(" ")) == nil {
			t.Errorf("%q: a write after the refusal passed", tc.data)
		}
	}
	var s PrefixScanner
	if s.Write([]byte(`{"a":[1]}`)); !s.Complete() {
		t.Error("a whole object is not Complete")
	}
}

// FuzzPrefixScanner: a JSON object passes the scanner, in pieces of any
// size, and is Complete at its end; what passes and is Complete is valid
// JSON (the oracle is encoding/json).
func FuzzPrefixScanner(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:aa","size":2},"layers":[]}`,
		`{"a":[1,-0.5e+3,true,false,null,"x\u00e9\n\"\\"],"b":{}}`, ` {} `, `junk`, `{"a":01}`, `{"a":1e5}`,
		`{"a":"\ud800"}`, "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, piece uint8) {
		var s PrefixScanner
		var err error
		size := int(piece)%16 + 1
		for rest := data; len(rest) > 0 && err == nil; {
			n := min(size, len(rest))
			err, rest = s.Write(rest[:n]), rest[n:]
		}
		trimmed := strings.TrimLeft(string(data), " \t\r\n")
		object := json.Valid(data) && strings.HasPrefix(trimmed, "{") && depth(data) <= maxJSONDepth
		if object && (err != nil || !s.Complete()) {
			t.Fatalf("%q: a JSON object, but refused (%v) or not Complete", data, err)
		}
		if err == nil && s.Complete() && !object {
			t.Fatalf("%q: Complete, but not a JSON object", data)
		}
	})
}

// depth is how deeply data's arrays and objects nest (data is valid JSON).
func depth(data []byte) int {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	d, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			deepest = max(deepest, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}
