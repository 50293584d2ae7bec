// Package crosssign implements Matrix cross-signing
// (https://spec.matrix.org/v1.16/client-server-api/#cross-signing): the
// master (MSK), self-signing (SSK) and user-signing (USK) keys, their
// CrossSigningKey JSON objects, the signatures between them, and a pure trust
// evaluation of what a server returned from /keys/query.
//
// Use [Generate] to create a user's three key pairs ([SigningKeys]) and its
// methods to produce the signed key objects, sign the user's own devices
// ([SigningKeys.SignDevice]) and sign other users' master keys after
// verification ([SigningKeys.SignMasterKey], which takes the public key the
// verification established, never a key ID). Use [ParseKey] and
// [ParseDeviceKeys] to check single objects, and [Evaluate] to judge a whole
// user: which devices are cross-signed, whether the identity is verified by
// our user-signing key, whether it changed from the pinned master key, and
// which device objects are invalid and why ([DeviceError]).
//
// The rules come from the threat model (A1b, A2, B1): a device object is
// accepted only if its inner user_id and device_id equal the IDs under which
// the server listed it, it carries both required keys and algorithms, its
// self-signature verifies, its ID is not the base64 of one of the user's
// cross-signing keys (the 2022 key/ID confusion, CVE-2022-39250), and its
// keys did not change under a known device ID. A cross-signing identity is
// used only if the MSK and SSK have the right usage and user ID and the SSK
// is signed by the MSK; otherwise it is ignored as a whole.
//
// The package is pure: randomness is an io.Reader, there is no clock, no
// storage and no I/O. Pinning (remembering the first master key seen) is the
// caller's job; [Evaluate] only compares against the pin it is given.
package crosssign
