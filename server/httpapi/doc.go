// Package httpapi serves the Matrix client-server API of myelind: routing with
// Matrix JSON errors (404/405 M_UNRECOGNIZED for unknown endpoints and methods),
// CORS for browser clients, request body limits (M_TOO_LARGE), access-token
// authentication, rate limits (429 with retry_after_ms and Retry-After),
// user-interactive auth, and the account, room and /sync endpoints.
//
// Build one with [New] and serve [Server.Handler]. The end-to-end-encryption
// endpoints plug in through registerE2EE (e2ee_routes.go).
//
// See https://spec.matrix.org/v1.16/client-server-api/.
package httpapi
