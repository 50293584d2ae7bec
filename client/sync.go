package client

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"myelin/api"
	"myelin/e2ee"
)

// syncFilter asks for enough timeline to catch up after a short absence
// without a gap, and no lazy loading (the e2ee machine needs every member).
const syncFilter = `{"room":{"timeline":{"limit":100},"state":{"lazy_load_members":false}}}`

// Run syncs until ctx ends, with exponential backoff (jittered, capped) on
// errors. It returns ctx's error, or an error that retrying cannot fix (the
// access token was revoked).
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("client: already running")
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	timeout := c.opts.SyncTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	failures := 0
	for {
		err := c.SyncOnce(ctx, timeout)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			failures = 0
			continue
		}
		var me *MatrixError
		if errors.As(err, &me) && (me.ErrCode == api.ErrCodeUnknownToken || me.ErrCode == api.ErrCodeMissingToken) {
			return err
		}
		wait := c.opts.Backoff.Delay(failures)
		if errors.As(err, &me) && me.RetryAfter > wait {
			wait = me.RetryAfter
		}
		failures++
		c.log.Warn("client: sync failed", "err", err, "retry_in", wait)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// SyncOnce runs one /sync (long-polling up to timeout), feeds it to the e2ee
// machine, sends the machine's requests and delivers the room events.
func (c *Client) SyncOnce(ctx context.Context, timeout time.Duration) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	c.mu.Lock()
	since := c.since
	c.mu.Unlock()
	// Outgoing first: a key upload or query left over from a failed round.
	// A request the server keeps refusing must not stop the sync that may
	// bring what fixes it.
	if err := c.flushOutgoing(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("client: e2ee requests before sync", "err", err)
	}
	res, err := c.http.Sync(ctx, SyncRequest{Since: since, TimeoutMS: int(timeout / time.Millisecond), Filter: syncFilter})
	if err != nil {
		return err
	}
	in := e2ee.SyncInput{
		DeviceListsChanged:     res.DeviceLists.Changed,
		DeviceListsLeft:        res.DeviceLists.Left,
		OneTimeKeyCounts:       res.DeviceOneTimeKeysCount,
		UnusedFallbackKeyTypes: res.DeviceUnusedFallbackKeyTypes,
	}
	for _, ev := range res.ToDevice.Events {
		in.ToDevice = append(in.ToDevice, e2ee.ToDeviceEvent{Type: ev.Type, Sender: ev.Sender, Content: ev.Content})
	}
	type timeline struct {
		room string
		evs  []api.ClientEvent
	}
	var timelines []timeline
	var invites []Event
	c.mu.Lock()
	for rid, jr := range res.Rooms.Join {
		ru := c.track(rid, "join", jr.State.Events, jr.Timeline.Events)
		in.Rooms = append(in.Rooms, ru)
		timelines = append(timelines, timeline{rid, jr.Timeline.Events})
	}
	for rid, lr := range res.Rooms.Leave {
		in.Rooms = append(in.Rooms, c.track(rid, "leave", lr.State.Events, lr.Timeline.Events))
		timelines = append(timelines, timeline{rid, lr.Timeline.Events})
	}
	for rid, ir := range res.Rooms.Invite {
		r := c.room(rid)
		if r.Membership != "invite" {
			var inviter string
			for _, s := range ir.InviteState.Events {
				if s.Type == "m.room.member" && s.StateKey == c.UserID() {
					inviter = s.Sender
				}
				if s.Type == "m.room.name" {
					var n struct {
						Name string `json:"name"`
					}
					if json.Unmarshal(s.Content, &n) == nil {
						r.Name = n.Name
					}
				}
			}
			invites = append(invites, Event{RoomID: rid, Invite: true, Event: api.ClientEvent{RoomID: rid, Sender: inviter, Type: "m.room.member"}})
		}
		r.Membership = "invite"
	}
	c.mu.Unlock()

	result, err := c.m.Receive(ctx, in)
	if err != nil {
		return err
	}
	c.deliverResult(ctx, result)
	if err := c.flushOutgoing(ctx); err != nil {
		c.log.Warn("client: e2ee requests after sync", "err", err)
	}
	for _, ev := range invites {
		c.deliver(ctx, ev)
	}
	c.retryPending(ctx)
	for _, tl := range timelines {
		for _, ev := range tl.evs {
			c.decryptAndDeliver(ctx, tl.room, ev)
		}
	}
	// Events not delivered because ctx ended come again with the same since.
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.since = res.NextBatch
	close(c.synced)
	c.synced = make(chan struct{})
	c.mu.Unlock()
	return c.saveSession(c.http.base.String())
}

func (c *Client) room(rid string) *Room {
	r := c.rooms[rid]
	if r == nil {
		r = &Room{ID: rid, Members: map[string]string{}}
		c.rooms[rid] = r
	}
	return r
}

// track updates the room table from state and timeline events (c.mu held)
// and returns the machine's view of the changes.
func (c *Client) track(rid, membership string, state, tl []api.ClientEvent) e2ee.RoomUpdate {
	r := c.room(rid)
	r.Membership = membership
	ru := e2ee.RoomUpdate{RoomID: rid}
	for _, list := range [][]api.ClientEvent{state, tl} {
		for _, ev := range list {
			if ev.StateKey == nil {
				continue
			}
			switch ev.Type {
			case "m.room.member":
				var m struct {
					Membership string `json:"membership"`
				}
				if json.Unmarshal(ev.Content, &m) == nil {
					r.Members[*ev.StateKey] = m.Membership
				}
				ru.Events = append(ru.Events, e2ee.Event(ev))
			case "m.room.encryption":
				r.Encrypted = true
				ru.Events = append(ru.Events, e2ee.Event(ev))
			case "m.room.name":
				var n struct {
					Name string `json:"name"`
				}
				if json.Unmarshal(ev.Content, &n) == nil {
					r.Name = n.Name
				}
			}
		}
	}
	return ru
}

func (c *Client) decryptAndDeliver(ctx context.Context, room string, ev api.ClientEvent) {
	d, err := c.m.Decrypt(ctx, room, e2ee.Event(ev))
	out := Event{RoomID: room, Encrypted: ev.Type == "m.room.encrypted", Raw: ev}
	if err != nil {
		var u *e2ee.UTDError
		if !errors.As(err, &u) {
			c.log.Error("client: decrypt", "room", room, "err", err)
		}
		out.Event, out.Err = ev, err
		if u != nil && (u.Reason == e2ee.UTDNoSession || u.Reason == e2ee.UTDWithheld) {
			c.mu.Lock()
			if len(c.pending) >= maxPending {
				c.pending = c.pending[1:]
			}
			c.pending = append(c.pending, ev)
			c.mu.Unlock()
		}
	} else {
		out.Event, out.Provenance = api.ClientEvent(d.Event), d.Provenance
		out.Event.RoomID = room
		if out.Event.EventID == "" {
			out.Event.EventID = ev.EventID
		}
	}
	c.deliver(ctx, out)
}

// retryPending tries again the events that lacked a session.
func (c *Client) retryPending(ctx context.Context) {
	c.mu.Lock()
	p := c.pending
	c.pending = nil
	c.mu.Unlock()
	var keep []api.ClientEvent
	for _, ev := range p {
		d, err := c.m.Decrypt(ctx, ev.RoomID, e2ee.Event(ev))
		if err != nil {
			var u *e2ee.UTDError
			if errors.As(err, &u) && (u.Reason == e2ee.UTDNoSession || u.Reason == e2ee.UTDWithheld) {
				keep = append(keep, ev)
			}
			continue
		}
		out := Event{RoomID: ev.RoomID, Encrypted: true, Raw: ev, Event: api.ClientEvent(d.Event), Provenance: d.Provenance, Retried: true}
		out.Event.RoomID = ev.RoomID
		if out.Event.EventID == "" {
			out.Event.EventID = ev.EventID
		}
		c.deliver(ctx, out)
	}
	c.mu.Lock()
	c.pending = append(keep, c.pending...)
	c.mu.Unlock()
}
