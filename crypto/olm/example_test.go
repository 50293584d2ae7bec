package olm_test

import (
	"crypto/rand"
	"fmt"

	"myelin/crypto/olm"
)

// Example shows a session between two devices: Alice claims one of Bob's
// one-time keys, Bob answers her pre-key message, and they talk.
func Example() {
	alice, _ := olm.NewAccount(rand.Reader)
	bob, _ := olm.NewAccount(rand.Reader)
	aliceKey, _ := alice.IdentityKeys()
	bobKey, _ := bob.IdentityKeys()

	// Bob publishes one-time keys; Alice claims one through the server.
	_ = bob.GenerateOneTimeKeys(rand.Reader, 1)
	otk := bob.OneTimeKeys()[0]
	bob.MarkKeysAsPublished()

	out, _ := alice.NewOutboundSession(rand.Reader, bobKey, otk.Key)
	m, _ := out.Encrypt(rand.Reader, []byte("hello Bob"))

	// Bob receives (type, bytes) from the to-device event.
	pre, err := olm.ParsePreKeyMessage(m.Marshal())
	if err != nil {
		panic(err)
	}
	in, plaintext, err := bob.NewInboundSession(aliceKey, pre)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(plaintext), in.ID() == out.ID())

	reply, _ := in.Encrypt(rand.Reader, []byte("hi Alice"))
	parsed, _ := olm.ParseMessage(reply.Type(), reply.Marshal())
	plaintext, _ = out.Decrypt(parsed)
	fmt.Println(string(plaintext), reply.Type() == olm.MessageTypeNormal)
	// Output:
	// hello Bob true
	// hi Alice true
}
