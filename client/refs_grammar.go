package client

import "strings"

// The grammar of github.com/distribution/reference (its regexp.go),
// matched by hand: compiling it as a regexp (the tag's {0,127} alone is
// 128 states) cost every nsfs process about 0.2 ms before main, a pull
// included. refs_grammar_test.go checks it against that regexp.
//
//	reference       := name [ ":" tag ] [ "@" digest ]
//	name            := [ domainAndPort "/" ] pathComponent ( "/" pathComponent )*
//	domainAndPort   := ( domainName | "[" [a-fA-F0-9:]+ "]" ) [ ":" [0-9]+ ]
//	domainName      := domainComponent ( "." domainComponent )*
//	domainComponent := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//	pathComponent   := [a-z0-9]+ ( separator [a-z0-9]+ )*
//	separator       := [._] | "__" | "-"+
//	tag             := [\w][\w.-]{0,127}
//	digest          := algorithm ":" [0-9a-fA-F]{32,}
//	algorithm       := [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*

// matchReference splits s into its name, tag and digest ("" when absent)
// when s is a reference of the grammar above.
func matchReference(s string) (name, tag, digest string, ok bool) {
	name = s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		name, digest = s[:i], s[i+1:]
		if !isReferenceDigest(digest) {
			return "", "", "", false
		}
	}
	// A tag follows the last component; only the first (a domain) may
	// hold another ':', before its port.
	if i := strings.IndexByte(name[strings.LastIndexByte(name, '/')+1:], ':'); i >= 0 {
		i += strings.LastIndexByte(name, '/') + 1
		name, tag = name[:i], name[i+1:]
		if !isTag(tag) {
			return "", "", "", false
		}
	}
	if !isReferenceName(name) {
		return "", "", "", false
	}
	return name, tag, digest, true
}

// isReferenceName: [ domainAndPort "/" ] pathComponent ( "/" pathComponent )*.
func isReferenceName(name string) bool {
	components := strings.Split(name, "/")
	allPaths := func(cs []string) bool {
		for _, c := range cs {
			if !isPathComponent(c) {
				return false
			}
		}
		return true
	}
	return allPaths(components) ||
		len(components) > 1 && isDomainAndPort(components[0]) && allPaths(components[1:])
}

// isPathComponent: [a-z0-9]+ ( separator [a-z0-9]+ )*.
func isPathComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start {
			return false // empty, or a separator where a run must be
		}
		if i == len(c) {
			return true
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// isDomainAndPort: ( domainName | "[" [a-fA-F0-9:]+ "]" ) [ ":" [0-9]+ ].
func isDomainAndPort(d string) bool {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return false
		}
		host, port = d[:end+1], d[end+1:]
		if !isIPv6Literal(host[1:end]) {
			return false
		}
	} else {
		if i := strings.IndexByte(d, ':'); i >= 0 {
			host, port = d[:i], d[i:]
		}
		if !isDomainName(host) {
			return false
		}
	}
	if port == "" {
		return true
	}
	if port[0] != ':' || len(port) == 1 {
		return false
	}
	for i := 1; i < len(port); i++ {
		if !isDigit(port[i]) {
			return false
		}
	}
	return true
}

// isIPv6Literal: [a-fA-F0-9:]+.
func isIPv6Literal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) && s[i] != ':' {
			return false
		}
	}
	return true
}

// isDomainName: domainComponent ( "." domainComponent )*.
func isDomainName(s string) bool {
	for _, c := range strings.Split(s, ".") {
		if c == "" || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
			return false
		}
		for i := 0; i < len(c); i++ {
			if !isAlnum(c[i]) && c[i] != '-' {
				return false
			}
		}
	}
	return true
}

// isTag: [\w][\w.-]{0,127}.
func isTag(s string) bool {
	if s == "" || len(s) > 128 || !isWord(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWord(s[i]) && s[i] != '.' && s[i] != '-' {
			return false
		}
	}
	return true
}

// isReferenceDigest: algorithm ":" [0-9a-fA-F]{32,}.
func isReferenceDigest(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) < 32 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if !isHexDigit(hex[i]) {
			return false
		}
	}
	// [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*
	atStart := true
	for i := 0; i < len(alg); i++ {
		b := alg[i]
		switch {
		case atStart:
			if !isLetter(b) {
				return false
			}
			atStart = false
		case b == '-' || b == '_' || b == '+' || b == '.':
			atStart = true
		case !isAlnum(b):
			return false
		}
	}
	return alg != "" && !atStart
}

// isHexIdentifier: ^[a-f0-9]{64}$, which Docker refuses as a name (it
// would read as an image ID).
func isHexIdentifier(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool      { return '0' <= b && b <= '9' }
func isLetter(b byte) bool     { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }
func isAlnum(b byte) bool      { return isDigit(b) || isLetter(b) }
func isLowerAlnum(b byte) bool { return isDigit(b) || 'a' <= b && b <= 'z' }
func isWord(b byte) bool       { return isAlnum(b) || b == '_' }
func isHexDigit(b byte) bool   { return isDigit(b) || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' }
