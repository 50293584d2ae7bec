package client

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"myelin/e2ee/verification"
	"myelin/id"
)

// maxInRoomPeers bounds the remembered other users of in-room flows.
const maxInRoomPeers = verification.MaxFlows

// RequestInRoom asks user to verify in room: the request is an
// m.room.message (msgtype m.key.verification.request) sent through the
// client's normal send path, so it is encrypted when the room is, and the
// event ID the server returns names the flow. The following steps travel as
// room events related to it (m.relates_to with rel_type m.reference).
func (v *Verifier) RequestInRoom(ctx context.Context, roomID, user string) (verification.FlowRef, error) {
	rid, err := id.ParseRoomID(roomID)
	if err != nil {
		return verification.FlowRef{}, err
	}
	uid, err := id.ParseUserID(user)
	if err != nil {
		return verification.FlowRef{}, err
	}
	if err := v.fetch(ctx, user); err != nil {
		return verification.FlowRef{}, err
	}
	// Holding order while sending: the answer (ready) cannot be handled
	// before the flow is registered under the request's event ID.
	v.order.Lock()
	v.mu.Lock()
	out := v.m.RequestInRoomContent(rid, uid)
	v.mu.Unlock()
	evID, err := v.c.SendMessage(ctx, rid.String(), out.Type, out.Content)
	if err != nil {
		v.order.Unlock()
		return verification.FlowRef{}, err
	}
	eid, err := id.ParseEventID(evID)
	if err != nil {
		v.order.Unlock()
		return verification.FlowRef{}, err
	}
	v.mu.Lock()
	ref, err := v.m.RequestSentInRoom(v.now(), rid, uid, eid)
	if err == nil {
		v.rememberPeer(ref, uid)
	}
	v.mu.Unlock()
	v.order.Unlock()
	if err != nil {
		return verification.FlowRef{}, err
	}
	v.report(ctx, verification.Result{Flow: ref, State: verification.Requested})
	return ref, nil
}

// inRoomPeer is the room and other user of an in-room flow.
type inRoomPeer struct {
	room id.RoomID
	user id.UserID
}

// rememberPeer records the other user of an in-room flow (v.mu held),
// first forgetting those of flows the machine no longer runs when the map
// is full.
func (v *Verifier) rememberPeer(ref verification.FlowRef, user id.UserID) {
	if len(v.peers) >= maxInRoomPeers {
		for fid, p := range v.peers {
			st, ok := v.m.State(verification.FlowRef{Transport: verification.InRoom, Room: p.room, ID: fid})
			if !ok || st == verification.Done || st == verification.Cancelled {
				delete(v.peers, fid)
			}
		}
	}
	if len(v.peers) < maxInRoomPeers {
		v.peers[ref.ID] = inRoomPeer{room: ref.Room, user: user}
	}
}

// isRoomVerification reports whether a decrypted room event is part of an
// in-room verification.
func isRoomVerification(evType string, content json.RawMessage) bool {
	if strings.HasPrefix(evType, "m.key.verification.") {
		return evType != verification.TypeRequest // a request is an m.room.message
	}
	if evType != verification.TypeRoomMessage {
		return false
	}
	var m struct {
		MsgType string `json:"msgtype"`
	}
	return json.Unmarshal(content, &m) == nil && m.MsgType == verification.TypeRequest
}

// onRoomEvent feeds one timeline event from the sync loop (only events that
// decrypted, or plaintext ones the e2ee machine let through).
func (v *Verifier) onRoomEvent(ctx context.Context, ev Event) {
	if ev.Err != nil || len(ev.Event.Content) > verification.MaxContentSize || !isRoomVerification(ev.Event.Type, ev.Event.Content) {
		return
	}
	sender, err := id.ParseUserID(ev.Raw.Sender)
	if err != nil {
		return
	}
	// The decrypted event's sender must be the one the Megolm session
	// belongs to (the e2ee machine's provenance authenticates it).
	if ev.Encrypted && ev.Provenance.SenderUser != ev.Raw.Sender {
		v.c.log.Warn("client: verify: in-room event sender differs from its session's", "sender", ev.Raw.Sender)
		return
	}
	room, err := id.ParseRoomID(ev.RoomID)
	if err != nil {
		return
	}
	eid, err := id.ParseEventID(ev.Raw.EventID)
	if err != nil {
		return
	}
	content := ev.Event.Content
	if ev.Encrypted {
		// The cleartext m.relates_to is the relation (the spec keeps it out
		// of the ciphertext); put it back, as the commitment covers it.
		content, err = withClearRelation(content, ev.Raw.Content)
		if err != nil {
			return
		}
	}
	in := verification.Incoming{
		Transport:      verification.InRoom,
		Type:           ev.Event.Type,
		Sender:         sender,
		Room:           room,
		EventID:        eid,
		OriginServerTS: time.UnixMilli(ev.Raw.OriginServerTS),
		Content:        content,
	}
	if sender.String() != v.c.UserID() && (in.Type == verification.TypeRoomMessage || in.Type == verification.TypeReady || in.Type == verification.TypeStart) {
		// The flow pins the other side's keys now: refresh them first.
		if err := v.fetch(ctx, sender.String()); err != nil {
			v.c.log.Warn("client: verify: keys/query", "err", err)
		}
	}
	v.order.Lock()
	v.mu.Lock()
	res, err := v.m.Handle(v.now(), in)
	v.mu.Unlock()
	if err != nil {
		v.order.Unlock()
		v.c.log.Debug("client: verify: ignored", "type", in.Type, "err", err)
		return
	}
	sendErr := v.sendAll(ctx, res)
	v.order.Unlock()
	if sendErr != nil {
		v.c.log.Warn("client: verify: send", "err", sendErr)
	}
	v.report(ctx, res)
}

// withClearRelation returns decrypted content with m.relates_to replaced by
// the encrypted event's cleartext one (removed when there is none).
func withClearRelation(decrypted, wire json.RawMessage) (json.RawMessage, error) {
	if len(decrypted) > verification.MaxContentSize || len(wire) > 4*verification.MaxContentSize {
		return nil, verification.ErrInvalidMessage
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(decrypted, &c); err != nil {
		return nil, err
	}
	var w struct {
		RelatesTo json.RawMessage `json:"m.relates_to"`
	}
	if err := json.Unmarshal(wire, &w); err != nil {
		return nil, err
	}
	delete(c, "m.relates_to")
	if len(w.RelatesTo) > 0 && string(w.RelatesTo) != "null" {
		c["m.relates_to"] = w.RelatesTo
	}
	return json.Marshal(c)
}
