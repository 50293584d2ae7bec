// Package e2ee compares myelin's end-to-end encryption with real peers. It
// holds only tests:
//
//   - benchmarks of myelin's e2ee machine side by side with mautrix-go's
//     crypto machine (OlmMachine with goolm) in one run, named for
//     benchstat:
//     BenchmarkShareRoomKey/impl={myelin,mautrix}/devices=1000 shares a new
//     room key with 1,000 cross-signed devices (100 users x 10) from
//     scratch, the one-time-key claim response in hand: 1,000 Olm session
//     creations (one-time-key signatures checked), 1,000 Olm encryptions of
//     m.room_key and the /sendToDevice body. myelin runs
//     Encrypt/Outgoing/MarkSent on a memory store restored from a snapshot;
//     mautrix runs ShareGroupSession with its MemoryStore pre-filled with the
//     devices and a mautrix.Client pointing at an httptest server that
//     answers /keys/claim and /sendToDevice from memory.
//     BenchmarkDecryptBacklog/impl={myelin,mautrix}/events=10000 decrypts
//     10,000 Megolm events from 10 senders (100 sessions) with the replay
//     table: myelin with DecryptBatch in pages of 100 from a reopened store,
//     mautrix with DecryptMegolmEvent event by event (it has no batch API) on
//     the same sessions, imported as received directly, with the sender
//     devices in its store and key fetching disabled;
//   - TestThreeClientsOneRoom: a myelin client (package client), a
//     mautrix-go client (goolm) and a matrix-nio client (through
//     ../clients/nio/driver.py) in one encrypted room on a myelind started
//     by the test, each decrypting the others' messages.
//
// Run the comparison from the interop directory (benchstat is
// golang.org/x/perf/cmd/benchstat):
//
//	go test ./e2ee -run '^$' -bench . -benchtime 3x -count 6 | tee e2ee.txt
//	benchstat -col /impl e2ee.txt
//
// The cpu-ns/op metric is the process's user+system CPU time per
// operation; ns/op below cpu-ns/op means both cores were used. On a shared
// machine, compare cpu-ns/op: wall time depends on the other load.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
package e2ee
