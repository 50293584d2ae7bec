package keys

import (
	"context"
	"encoding/json"
	"errors"

	"myelin/api"
	"myelin/server/storage"
)

// ToDeviceLimit is the number of to-device messages one /sync returns at most
// (the spec recommends 100).
const ToDeviceLimit = 100

// SendToDeviceRequest is the body of PUT /sendToDevice/{eventType}/{txnId}.
type SendToDeviceRequest struct {
	Messages map[string]map[string]json.RawMessage `json:"messages"`
}

// SendToDevice handles PUT /sendToDevice/{eventType}/{txnId} from the
// authenticated device. It is idempotent per (sender, sender device, txnID):
// a retransmission returns success without queueing the messages again.
// Messages to "*" go to all of the target user's devices; messages to
// unknown devices and to users of other servers are dropped.
func (s *Service) SendToDevice(ctx context.Context, sender, senderDevice, evType, txnID string, req SendToDeviceRequest) error {
	if !validID(evType) {
		return api.InvalidParam("invalid event type")
	}
	if !validID(txnID) {
		return api.InvalidParam("invalid transaction ID")
	}
	if req.Messages == nil {
		return api.MissingParam("messages is required")
	}
	send := storage.ToDeviceSend{Sender: sender, SenderDevice: senderDevice, TxnID: txnID, Type: evType}
	for u, devs := range req.Messages {
		if len(u) == 0 || u[0] != '@' || len(u) > MaxIDLength {
			return api.InvalidParam("invalid user ID in messages")
		}
		for d, content := range devs {
			if !validID(d) {
				return api.InvalidParam("invalid device ID in messages")
			}
			if len(content) > MaxToDeviceContent {
				return api.TooLarge("to-device message too large")
			}
			if !startsWithObject(content) {
				return api.BadJSON("to-device message content must be an object")
			}
			c, err := compact(content)
			if err != nil {
				return api.BadJSON("to-device message content is not valid JSON")
			}
			send.Messages = append(send.Messages, storage.ToDeviceMessage{UserID: u, DeviceID: d, Content: c})
			if len(send.Messages) > MaxToDeviceMessages {
				return api.InvalidParam("too many messages")
			}
		}
	}
	// The store wakes the targets' syncs after commit.
	_, err := s.store.SendToDevice(ctx, send)
	if errors.Is(err, storage.ErrDuplicateTxn) {
		return nil
	}
	return internal("send to device", err)
}

// ToDeviceEvent is a to-device event as /sync returns it.
type ToDeviceEvent struct {
	Sender  string          `json:"sender"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}
