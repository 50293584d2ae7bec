// Package e2ee is myelin's end-to-end encryption machine: a state machine
// with no network I/O that turns sync input into decrypted events and
// outgoing requests, under a strict trust policy that a malicious homeserver
// cannot subvert (see docs/threat-model.md and RULES.md in this directory).
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
package e2ee
