// Package api holds wire types shared by the myelin homeserver and clients for
// the Matrix client-server API: the standard error body ([Error]) with its
// error codes, client-format events ([ClientEvent]) and filters ([Filter]).
//
// It contains no I/O. Field names follow the spec:
// https://spec.matrix.org/v1.16/client-server-api/
package api
