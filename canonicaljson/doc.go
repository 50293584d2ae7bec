// Package canonicaljson decodes untrusted JSON strictly and encodes it in the
// Canonical JSON form that Matrix signs
// (https://spec.matrix.org/v1.16/appendices/#canonical-json).
//
// Use [Canonicalize] to validate untrusted bytes and get their canonical
// encoding in one pass (a hand-written tokenizer; no intermediate map),
// [CanonicalizeWithout] to get the bytes that a Matrix signature covers (the
// object without its top-level "signatures" and "unsigned"), [Parse] to get
// a generic tree (map[string]any, []any, string, int64, bool, nil) with exact,
// case-sensitive keys, and [Marshal] to encode Go values canonically.
//
// # Strictness
//
// The decoder rejects, with a [*SyntaxError] that carries the byte offset and
// wraps one of the Err* sentinels: duplicate keys at any depth (compared after
// unescaping, so "a" and "\u0061" collide), numbers with a fraction or an
// exponent, negative zero, integers outside [-(2^53)+1, 2^53-1], invalid
// UTF-8, lone or mis-paired UTF-16 surrogates in \u escapes, control
// characters in strings, nesting deeper than [Options.MaxDepth] and inputs
// longer than [Options.MaxSize].
//
// The spec's last canonicalisation example turns {"a": -0, "b": 1e10} into
// {"a":0,"b":10000000000}. That normalisation is off by default (a signed
// object that needed it cannot have come from a conforming signer) and is
// available with [Options.NormalizeNumbers], which still refuses values that
// are not integers or are out of range.
//
// # Encoding
//
// Output has no insignificant whitespace, object keys sorted by Unicode code
// point (byte order of UTF-8), integers without exponent, and only the
// escapes the grammar requires: \" and \\, \b \t \n \f \r, and \u00XX with
// lower-case hex for the other control characters. Everything else,
// including "/", "<", ">", "&", U+007F and U+2028/U+2029, is written as raw
// UTF-8.
package canonicaljson
