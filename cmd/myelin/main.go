// Command myelin is a small end-to-end-encrypted Matrix client on the myelin
// SDK (package client).
//
//	myelin [-dir DIR] register -hs URL -user NAME    (password from $MYELIN_PASSWORD)
//	myelin [-dir DIR] login -hs URL -user NAME       (a new, not cross-signed device)
//	myelin [-dir DIR] whoami
//	myelin [-dir DIR] rooms
//	myelin [-dir DIR] create [-name NAME] [USER...]  (an encrypted room)
//	myelin [-dir DIR] invite ROOM USER
//	myelin [-dir DIR] join ROOM
//	myelin [-dir DIR] leave ROOM
//	myelin [-dir DIR] send ROOM TEXT...
//	myelin [-dir DIR] tail [-n COUNT] [-timeout DURATION] [ROOM]
//	myelin [-dir DIR] devices
//	myelin [-dir DIR] logout
//
// DIR (default ./myelin-data) holds the session, the e2ee store and its
// pickle key. Every message printed by tail carries its provenance: the
// sending device and its trust level, or why it could not be decrypted.
// The trust policy is strict: room keys go only to cross-signed devices of
// pinned identities, and messages from other devices are hidden.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"myelin/client"
	"myelin/e2ee"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "myelin:", err)
		os.Exit(1)
	}
}

const usage = "usage: myelin [-dir DIR] register|login|whoami|rooms|create|invite|join|leave|send|tail|devices|logout ..."

func run(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("myelin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "myelin-data", "state directory")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w\n%s", err, usage)
	}
	if fs.NArg() == 0 {
		return errors.New(usage)
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	opts := client.Options{StoreDir: *dir, DeviceDisplayName: "myelin CLI"}
	switch cmd {
	case "register", "login":
		f := flag.NewFlagSet(cmd, flag.ContinueOnError)
		f.SetOutput(io.Discard)
		hs := f.String("hs", "", "homeserver URL")
		user := f.String("user", "", "user name")
		if err := f.Parse(rest); err != nil {
			return err
		}
		pw := getenv("MYELIN_PASSWORD")
		if *hs == "" || *user == "" || pw == "" {
			return fmt.Errorf("%s needs -hs, -user and $MYELIN_PASSWORD", cmd)
		}
		var c *client.Client
		var err error
		if cmd == "register" {
			c, err = client.Register(ctx, *hs, *user, pw, opts)
		} else {
			c, err = client.Login(ctx, *hs, *user, pw, nil, opts)
		}
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(out, "%s %s\n", c.UserID(), c.DeviceID())
		return nil
	}
	c, err := client.Resume(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Close()
	switch cmd {
	case "whoami":
		fmt.Fprintf(out, "%s %s\n", c.UserID(), c.DeviceID())
	case "rooms":
		if err := c.SyncOnce(ctx, 0); err != nil {
			return err
		}
		for _, r := range c.Rooms() {
			enc := "plaintext"
			if ok, _ := c.Machine().IsEncrypted(ctx, r.ID); ok {
				enc = "encrypted"
			}
			joined := 0
			for _, m := range r.Members {
				if m == "join" {
					joined++
				}
			}
			fmt.Fprintf(out, "%s\t%s\t%s\t%d members\t%q\n", r.ID, r.Membership, enc, joined, r.Name)
		}
	case "create":
		f := flag.NewFlagSet(cmd, flag.ContinueOnError)
		f.SetOutput(io.Discard)
		name := f.String("name", "", "room name")
		if err := f.Parse(rest); err != nil {
			return err
		}
		room, err := c.CreateEncryptedRoom(ctx, *name, f.Args())
		if err != nil {
			return err
		}
		fmt.Fprintln(out, room)
	case "invite":
		if len(rest) != 2 {
			return errors.New("usage: myelin invite ROOM USER")
		}
		return c.Invite(ctx, rest[0], rest[1])
	case "join", "leave":
		if len(rest) != 1 {
			return fmt.Errorf("usage: myelin %s ROOM", cmd)
		}
		if cmd == "join" {
			return c.Join(ctx, rest[0])
		}
		return c.Leave(ctx, rest[0])
	case "send":
		if len(rest) < 2 {
			return errors.New("usage: myelin send ROOM TEXT...")
		}
		if err := c.SyncOnce(ctx, 0); err != nil {
			return err
		}
		id, err := c.SendText(ctx, rest[0], strings.Join(rest[1:], " "))
		if err != nil {
			return err
		}
		fmt.Fprintln(out, id)
	case "tail":
		return tail(ctx, c, rest, out)
	case "devices":
		devs, err := c.HTTP().Devices(ctx)
		if err != nil {
			return err
		}
		sort.Slice(devs, func(i, j int) bool { return devs[i].DeviceID < devs[j].DeviceID })
		st, _ := c.Machine().Identity(ctx, c.UserID())
		for _, d := range devs {
			mark, trust := " ", "unknown"
			if d.DeviceID == c.DeviceID() {
				mark = "*"
			}
			if st != nil {
				if t, ok := st.Devices[d.DeviceID]; ok {
					trust = t.String()
				}
			}
			fmt.Fprintf(out, "%s %s\t%s\t%q\n", mark, d.DeviceID, trust, d.DisplayName)
		}
	case "logout":
		return c.Logout(ctx)
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	return nil
}

// tail prints room events as they arrive.
func tail(ctx context.Context, c *client.Client, args []string, out io.Writer) error {
	f := flag.NewFlagSet("tail", flag.ContinueOnError)
	f.SetOutput(io.Discard)
	n := f.Int("n", 0, "exit after this many messages (0: run until interrupted)")
	timeout := f.Duration("timeout", 0, "give up after this long (0: never)")
	if err := f.Parse(args); err != nil {
		return err
	}
	room := f.Arg(0)
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	seen := 0
	for {
		select {
		case err := <-errc:
			if errors.Is(err, context.Canceled) && seen >= *n && *n > 0 {
				return nil
			}
			return err
		case ev := <-c.Events():
			if room != "" && ev.RoomID != room {
				continue
			}
			if !printEvent(out, ev) {
				continue
			}
			seen++
			if *n > 0 && seen >= *n {
				cancel()
				<-errc
				return nil
			}
		}
	}
}

// printEvent writes one line for a message, an undecryptable event, an
// invite or an alert, and reports whether it counted as a message.
func printEvent(out io.Writer, ev client.Event) bool {
	switch {
	case ev.Alert != nil:
		fmt.Fprintf(out, "ALERT %s %s %s: %s\n", ev.Alert.Code, ev.Alert.UserID, ev.Alert.DeviceID, ev.Alert.Message)
		return false
	case ev.Invite:
		fmt.Fprintf(out, "INVITE %s from %s\n", ev.RoomID, ev.Event.Sender)
		return false
	case ev.Err != nil:
		var u *e2ee.UTDError
		reason := "error"
		if errors.As(ev.Err, &u) {
			reason = u.Reason.String()
		}
		fmt.Fprintf(out, "%s %s UNABLE TO DECRYPT (%s)\n", ev.RoomID, ev.Raw.Sender, reason)
		return true
	case ev.Event.Type == "m.room.message":
		var c struct {
			Body string `json:"body"`
		}
		json.Unmarshal(ev.Event.Content, &c)
		p := ev.Provenance
		who := p.SenderUser
		if p.SenderDevice != "" {
			who += "/" + p.SenderDevice
		}
		fmt.Fprintf(out, "%s %s [%s] %s %s\n", ev.RoomID, who, p.Trust, time.UnixMilli(ev.Event.OriginServerTS).UTC().Format(time.TimeOnly), c.Body)
		return true
	}
	return false
}
