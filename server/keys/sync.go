package keys

import (
	"context"
)

// SyncRequest describes the device a /sync response is for.
type SyncRequest struct {
	UserID   string
	DeviceID string
	// Since and Upto bound the stream range (Since, Upto]; Since is 0 on an
	// initial sync.
	Since, Upto int64
	// ToDeviceSince is the ID of the last to-device message the device
	// received (from its since token): messages up to it are acknowledged
	// and deleted.
	ToDeviceSince int64
	// SharedUsers, when not nil, are the users currently sharing a room with
	// the caller (saves a query).
	SharedUsers []string
	// MembershipDone says the caller derives device-list entries from
	// membership changes itself: Changed then holds only key changes.
	MembershipDone bool
}

// SyncData holds the E2EE fields of one /sync response.
type SyncData struct {
	// ToDevice holds the device's pending to-device messages (at most
	// ToDeviceLimit), in arrival order.
	ToDevice []ToDeviceEvent
	// ToDeviceNext is the ID of the last message in ToDevice, or
	// ToDeviceSince when there is none; it goes into next_batch.
	ToDeviceNext int64
	// Changed and Left are device_lists.changed and .left; empty on an
	// initial sync (Left also when MembershipDone).
	Changed []string
	Left    []string
	// OneTimeKeysCount always contains signed_curve25519 (matrix-nio stops
	// uploading keys when it is missing).
	OneTimeKeysCount map[string]int
	// UnusedFallbackKeyTypes is never nil.
	UnusedFallbackKeyTypes []string
}

// Sync returns the E2EE part of a /sync response for a device. Messages up to
// req.ToDeviceSince are deleted: the client's since token proves it received
// the response that carried them. Messages after it are delivered again until
// a later token acknowledges them, so a lost response loses nothing.
func (s *Service) Sync(ctx context.Context, req SyncRequest) (*SyncData, error) {
	d := &SyncData{ToDevice: []ToDeviceEvent{}, ToDeviceNext: req.ToDeviceSince, Changed: []string{}, Left: []string{}}
	st, err := s.store.DeviceSyncState(ctx, req.UserID, req.DeviceID, req.ToDeviceSince, ToDeviceLimit)
	if err != nil {
		return nil, internal("sync: device state", err)
	}
	if st.AckPending {
		// The since token proves the client got the response that carried
		// these messages: delete them now.
		if err := s.store.AckToDevice(ctx, req.UserID, req.DeviceID, req.ToDeviceSince); err != nil {
			return nil, internal("sync: acknowledge to-device", err)
		}
	}
	for _, e := range st.ToDevice {
		d.ToDevice = append(d.ToDevice, ToDeviceEvent{Sender: e.Sender, Type: e.Type, Content: e.Content})
		d.ToDeviceNext = e.ID
	}
	if req.Since > 0 {
		if req.MembershipDone {
			d.Changed, err = s.keyChanges(ctx, req.UserID, req.Since, req.Upto, req.SharedUsers)
		} else {
			d.Changed, d.Left, err = s.deviceLists(ctx, req.UserID, req.Since, req.Upto, req.SharedUsers)
		}
		if err != nil {
			return nil, err
		}
	}
	d.OneTimeKeysCount = withSignedCurve(st.OneTimeKeyCounts)
	d.UnusedFallbackKeyTypes = st.UnusedFallbackKeyTypes
	if d.UnusedFallbackKeyTypes == nil {
		d.UnusedFallbackKeyTypes = []string{}
	}
	return d, nil
}

// HasToDevice reports whether the device has to-device messages after
// toDeviceSince (a long-polling /sync must then return at once).
func (s *Service) HasToDevice(ctx context.Context, userID, deviceID string, toDeviceSince int64) (bool, error) {
	ok, err := s.store.HasToDevice(ctx, userID, deviceID, toDeviceSince)
	return ok, internal("sync: pending to-device", err)
}

// KeyChanges handles GET /keys/changes over the stream range (from, to].
func (s *Service) KeyChanges(ctx context.Context, userID string, from, to int64) (changed, left []string, err error) {
	return s.DeviceLists(ctx, userID, from, to)
}
