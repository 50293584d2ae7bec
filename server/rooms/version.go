package rooms

import "fmt"

// RoomVersion identifies a room version, the set of rules (event format,
// redaction algorithm, authorisation rules) a room follows for its lifetime.
// Only [V10] and [V11] are supported.
type RoomVersion string

const (
	// V10 is room version 10: integer-only power levels, knock_restricted,
	// the v9 redaction algorithm and a top-level "redacts" on redactions.
	V10 RoomVersion = "10"
	// V11 is room version 11: v10 with the v11 redaction algorithm, no
	// "creator" in m.room.create and "redacts" moved into content.
	V11 RoomVersion = "11"
	// DefaultVersion is the version of new rooms unless the client asks otherwise.
	DefaultVersion = V11
)

// SupportedVersions lists the supported versions, for the
// m.room_versions capability. All are "stable".
func SupportedVersions() []RoomVersion { return []RoomVersion{V10, V11} }

// ParseRoomVersion returns the version named s, or an error wrapping
// [ErrUnsupportedRoomVersion] (which the HTTP layer maps to
// M_UNSUPPORTED_ROOM_VERSION).
func ParseRoomVersion(s string) (RoomVersion, error) {
	switch v := RoomVersion(s); v {
	case V10, V11:
		return v, nil
	}
	return "", fmt.Errorf("rooms: room version %.20q: %w", s, ErrUnsupportedRoomVersion)
}

// Supported reports whether v is a version this package implements.
func (v RoomVersion) Supported() bool { return v == V10 || v == V11 }

// rules are the room-version-dependent switches. Everything not listed is
// the same in v10 and v11.
type rules struct {
	// redactKeepsLegacyTop: redaction keeps top-level origin, membership
	// and prev_state (v9 algorithm).
	redactKeepsLegacyTop bool
	// redactCreateKeepsAll: m.room.create keeps all of content (else only creator).
	redactCreateKeepsAll bool
	// redactPLKeepsInvite: m.room.power_levels keeps "invite".
	redactPLKeepsInvite bool
	// redactRedactionKeepsRedacts: m.room.redaction keeps content.redacts.
	redactRedactionKeepsRedacts bool
	// redactMemberKeepsTPISigned: m.room.member keeps third_party_invite.signed.
	redactMemberKeepsTPISigned bool
	// redactsInContent: m.room.redaction carries "redacts" in content (v11)
	// rather than at the top level (v10).
	redactsInContent bool
	// createNeedsCreator: m.room.create must have content.creator, and the
	// creator is content.creator (v10); otherwise the creator is the sender.
	createNeedsCreator bool
}

func (v RoomVersion) rules() rules {
	switch v {
	case V10:
		return rules{createNeedsCreator: true, redactKeepsLegacyTop: true}
	case V11:
		return rules{
			redactCreateKeepsAll:        true,
			redactPLKeepsInvite:         true,
			redactRedactionKeepsRedacts: true,
			redactMemberKeepsTPISigned:  true,
			redactsInContent:            true,
		}
	}
	panic("rooms: internal error: rules of unsupported room version " + string(v))
}
