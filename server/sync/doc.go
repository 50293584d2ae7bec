// Package sync holds the pieces of /sync that are independent of HTTP: the
// [Notifier] that wakes long-polling requests when a user's streams change, the
// [Token] format, and the [E2EESource] hook through which the end-to-end
// encryption package supplies to_device, device_lists,
// device_one_time_keys_count and device_unused_fallback_key_types.
//
// See https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3sync.
package sync
