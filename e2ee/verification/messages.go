package verification

import (
	"encoding/json"
	"errors"
	"fmt"

	"myelin/canonicaljson"
)

// Event types of the key verification framework and of SAS.
const (
	TypeRequest = "m.key.verification.request"
	TypeReady   = "m.key.verification.ready"
	TypeStart   = "m.key.verification.start"
	TypeAccept  = "m.key.verification.accept"
	TypeKey     = "m.key.verification.key"
	TypeMAC     = "m.key.verification.mac"
	TypeDone    = "m.key.verification.done"
	TypeCancel  = "m.key.verification.cancel"
	// TypeRoomMessage is the event type of an in-room request (with
	// msgtype [TypeRequest]).
	TypeRoomMessage = "m.room.message"
)

// Verification method names.
const (
	MethodSAS         = "m.sas.v1"
	MethodQRShow      = "m.qr_code.show.v1"
	MethodQRScan      = "m.qr_code.scan.v1"
	MethodReciprocate = "m.reciprocate.v1"
)

// RelReference is the rel_type of in-room verification events.
const RelReference = "m.reference"

// MaxContentSize bounds the content of a verification event we parse.
const MaxContentSize = 16 << 10

// MaxListEntries bounds the entries of a list field (methods, protocols).
const MaxListEntries = 32

// CancelCode is the code of an m.key.verification.cancel.
type CancelCode string

// Cancel codes of the framework and of SAS.
const (
	CancelUser                 CancelCode = "m.user"
	CancelTimeout              CancelCode = "m.timeout"
	CancelUnknownTransaction   CancelCode = "m.unknown_transaction"
	CancelUnknownMethod        CancelCode = "m.unknown_method"
	CancelUnexpectedMessage    CancelCode = "m.unexpected_message"
	CancelKeyMismatch          CancelCode = "m.key_mismatch"
	CancelUserMismatch         CancelCode = "m.user_mismatch"
	CancelInvalidMessage       CancelCode = "m.invalid_message"
	CancelAccepted             CancelCode = "m.accepted"
	CancelMismatchedCommitment CancelCode = "m.mismatched_commitment"
	CancelMismatchedSAS        CancelCode = "m.mismatched_sas"
)

// reason is the human-readable text sent with a code.
func (c CancelCode) reason() string {
	switch c {
	case CancelUser:
		return "The user cancelled the verification."
	case CancelTimeout:
		return "The verification timed out."
	case CancelUnknownTransaction:
		return "Unknown verification transaction."
	case CancelUnknownMethod:
		return "No common verification method."
	case CancelUnexpectedMessage:
		return "Unexpected verification message."
	case CancelKeyMismatch:
		return "The key was not verified."
	case CancelUserMismatch:
		return "The sender does not match the verification."
	case CancelInvalidMessage:
		return "Invalid verification message."
	case CancelAccepted:
		return "The request was accepted by another device."
	case CancelMismatchedCommitment:
		return "The hash commitment did not match."
	case CancelMismatchedSAS:
		return "The short authentication strings did not match."
	}
	return "Verification cancelled."
}

// ErrInvalidMessage reports content that is not a well-formed verification
// message (cancel m.invalid_message).
var ErrInvalidMessage = errors.New("verification: invalid message")

// relatesTo is m.relates_to of in-room verification events.
type relatesTo struct {
	RelType string `json:"rel_type"`
	EventID string `json:"event_id"`
}

// content is the union of the fields of all verification messages. Fields
// are read only for the type that defines them.
type content struct {
	TransactionID string     `json:"transaction_id,omitempty"`
	RelatesTo     *relatesTo `json:"m.relates_to,omitempty"`

	// request, ready, start
	FromDevice string   `json:"from_device,omitempty"`
	Methods    []string `json:"methods,omitempty"`
	Timestamp  int64    `json:"timestamp,omitempty"`
	MsgType    string   `json:"msgtype,omitempty"`
	To         string   `json:"to,omitempty"`
	Body       string   `json:"body,omitempty"`

	// start
	Method                     string   `json:"method,omitempty"`
	KeyAgreementProtocols      []string `json:"key_agreement_protocols,omitempty"`
	Hashes                     []string `json:"hashes,omitempty"`
	MessageAuthenticationCodes []string `json:"message_authentication_codes,omitempty"`
	ShortAuthenticationStrings []string `json:"short_authentication_string,omitempty"`
	Secret                     string   `json:"secret,omitempty"`

	// accept
	KeyAgreementProtocol      string `json:"key_agreement_protocol,omitempty"`
	Hash                      string `json:"hash,omitempty"`
	MessageAuthenticationCode string `json:"message_authentication_code,omitempty"`
	Commitment                string `json:"commitment,omitempty"`

	// key
	Key string `json:"key,omitempty"`

	// mac
	MAC  map[string]string `json:"mac,omitempty"`
	Keys string            `json:"keys,omitempty"`

	// cancel
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// parseContent decodes untrusted content strictly (canonicaljson rejects
// duplicate keys, floats and bad UTF-8) and returns it with its canonical
// encoding, which the commitment covers.
func parseContent(raw []byte) (*content, []byte, error) {
	if len(raw) > MaxContentSize {
		return nil, nil, fmt.Errorf("verification: content of %d bytes: %w", len(raw), ErrInvalidMessage)
	}
	canon, err := canonicaljson.Canonicalize(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("verification: %w: %w", ErrInvalidMessage, err)
	}
	var c content
	if err := json.Unmarshal(canon, &c); err != nil {
		return nil, nil, fmt.Errorf("verification: %w: %w", ErrInvalidMessage, err)
	}
	for _, l := range [][]string{c.Methods, c.KeyAgreementProtocols, c.Hashes, c.MessageAuthenticationCodes, c.ShortAuthenticationStrings} {
		if len(l) > MaxListEntries {
			return nil, nil, fmt.Errorf("verification: list of %d entries: %w", len(l), ErrInvalidMessage)
		}
	}
	if len(c.MAC) > MaxListEntries {
		return nil, nil, fmt.Errorf("verification: mac of %d entries: %w", len(c.MAC), ErrInvalidMessage)
	}
	return &c, canon, nil
}

// encode returns the canonical JSON of an outgoing content.
func encode(v any) []byte {
	b, err := canonicaljson.Marshal(v)
	if err != nil {
		panic("verification: internal error: " + err.Error())
	}
	return b
}
