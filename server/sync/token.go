package sync

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadToken is returned by [ParseToken] for a malformed token.
var ErrBadToken = errors.New("sync: malformed token")

// Token is a /sync position: Pos in the global stream, Typing in the
// in-memory typing stream (reset at restart) and ToDevice, the last to-device
// message delivered to the device (so that an undelivered tail is never
// acknowledged).
type Token struct {
	Pos      int64
	Typing   int64
	ToDevice int64
}

// String encodes the token as "s<pos>_<typing>_<todevice>".
func (t Token) String() string {
	return fmt.Sprintf("s%d_%d_%d", t.Pos, t.Typing, t.ToDevice)
}

// ParseToken decodes a token. It also accepts "t<pos>" pagination tokens and
// bare integers, which carry only Pos.
func ParseToken(s string) (Token, error) {
	if len(s) > 100 {
		return Token{}, ErrBadToken
	}
	if rest, ok := strings.CutPrefix(s, "s"); ok {
		parts := strings.Split(rest, "_")
		if len(parts) != 3 {
			return Token{}, ErrBadToken
		}
		var v [3]int64
		for i, p := range parts {
			n, err := strconv.ParseInt(p, 10, 64)
			if err != nil || n < 0 {
				return Token{}, ErrBadToken
			}
			v[i] = n
		}
		return Token{Pos: v[0], Typing: v[1], ToDevice: v[2]}, nil
	}
	s = strings.TrimPrefix(s, "t")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return Token{}, ErrBadToken
	}
	return Token{Pos: n}, nil
}
