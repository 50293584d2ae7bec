// Package verification runs interactive key verification (the key
// verification framework, SAS m.sas.v1 and QR codes) as a pure state machine: no
// network, no storage, the clock and randomness passed in. It turns verified
// MACs into a typed [Outcome] naming exactly the public keys that were proven,
// and builds the /keys/signatures/upload body from it.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#key-verification-framework
// https://spec.matrix.org/v1.16/client-server-api/#short-authentication-string-sas-verification
// and https://spec.matrix.org/v1.16/client-server-api/#qr-codes
//
// # Use
//
// Create one [Machine] per device ([NewMachine]) with our identity, an
// io.Reader for randomness and a [KeyLookup] into the caller's device store.
// Feed it every verification event ([Incoming]: to-device
// m.key.verification.*, or in-room m.room.message with msgtype
// m.key.verification.request and the m.key.verification.* room events) with
// the sender as the transport authenticated it; every call returns a [Result]
// with the messages to send ([Outgoing]), the SAS to show, the [Outcome] or
// the [Cancellation]. User actions are methods on [Machine]:
// [Machine.RequestToDevice], [Machine.RequestInRoomContent] then
// [Machine.RequestSentInRoom], [Machine.Accept] (send ready),
// [Machine.StartSAS], [Machine.AcceptSAS] (only for a start without
// request), [Machine.Confirm] and [Machine.Mismatch] (the user compared the
// SAS), [Machine.Cancel]. With [Options.QR]: [Machine.ShowQR],
// [Machine.ScanQR], [Machine.ConfirmQRScanned]. Call [Machine.Tick] now and
// then for timeouts.
//
// On success, [Outcome.SignOtherUser] signs the other user's master key with
// our user-signing key, and [Outcome.SignOwnDevice] signs our other device
// with our self-signing key, and [Outcome.SignOwnMasterKey] lets a new
// device sign the master key another of our devices proved to it; all return
// the /keys/signatures/upload body and sign only the public key the flow
// proved.
//
// Sender authentication is the caller's: [Incoming.Sender] is the to-device
// envelope sender or the room event's sender, and [Incoming.SenderDevice] the
// device only when Olm authenticated it. The machine then ties every
// message to the user and device the flow is with (from_device of ready and
// start, SenderDevice when set).
//
// # Rules (threat model A2, B11)
//
//   - The keys to verify are fixed when the other device becomes known (ready
//     sent or received, or a start without request): the other device's
//     Ed25519 key and the other user's master key as the [KeyLookup] returns
//     them then (sas.Pin). A user with a device whose ID equals the base64 of
//     one of its cross-signing keys is refused (m.key_mismatch,
//     sas.ErrDeviceIDCollision). Before the outcome the lookup is asked again;
//     a changed key cancels with m.key_mismatch.
//   - MAC key IDs resolve only against the pinned keys (sas.VerifyMACs); an
//     Outcome holds only keys whose MAC verified, with the pinned public key.
//   - Every message must come from the user (and, where known, the device) the
//     flow is with, in order; anything else cancels (m.user_mismatch,
//     m.unexpected_message), except that in a room an event from a third
//     member is ignored (it is not part of the flow, and cancelling would let
//     any member abort others' verifications). done before a verified MAC
//     cancels.
//   - curve25519-hkdf-sha256, sha256 and hkdf-hmac-sha256.v2 only; the legacy
//     hkdf-hmac-sha256 MAC only with [Options.AllowLegacyMAC] and only when the
//     peer offers nothing better. The accepter's commitment is checked.
//   - QR: the scanner checks both keys in the code against its own pinned
//     beliefs; the device that showed the code accepts one m.reciprocate.v1
//     start from the flow's device carrying its secret, and trusts only the
//     key it encoded, after its user confirms the other screen.
//   - Flows time out 10 minutes after they began; a received request that is
//     10 minutes old (or 5 minutes in the future) is ignored, and its prompt
//     expires 2 minutes after receipt.
//
// # Rules and tests
//
// Rule IDs are those of docs/threat-model.md; each test fails if its rule is
// removed (18 checks were verified by removing them).
//
//	A2 (device ID = base64 of a fake master key; 2022)  TestA2DeviceIDIsFakeMasterKey
//	A2 variant: master key swapped mid-flow              TestA2DeviceIDIsFakeMasterKey/master_key_swapped, TestKeyChangedMidFlow
//	B11 MAC for a key ID that was not pinned             TestMACForUnpinnedKeyID
//	B11 commitment checked                               TestCommitmentMismatch
//	B11 per-key MAC and KEY_IDS MAC                      TestMACMismatch
//	B11 sender is the flow's user and device             TestWrongSender, TestSASInRoomThirdUserIgnored (e2etest)
//	B11 no legacy-MAC downgrade                          TestLegacyMACDowngradeRefused
//	B11 no outcome without the user's confirmation       TestNoOutcomeWithoutConfirm, TestDoneBeforeMAC
//	B11 unexpected/second start, unknown transaction     TestSecondStartAfterAccept, TestUnknownTransaction
//	B11 timeouts                                         TestTimeout
//	B11 QR: keys checked, secret once, user confirms     TestQRScanChecksKeys, TestQRReciprocateRules
//	sign only the verified key                           TestSignRefusals
//	hostile message at any stage never yields an Outcome FuzzHandle
package verification
