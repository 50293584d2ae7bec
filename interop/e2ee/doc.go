// Package e2ee compares myelin's end-to-end encryption with real peers. It
// holds only tests:
//
//   - benchmarks of myelin's e2ee machine side by side with mautrix-go's
//     crypto machine (OlmMachine with goolm), named for benchstat:
//     BenchmarkShareRoomKey/impl={myelin,mautrix}/devices=1000 (a new room
//     key to 1,000 devices from scratch, the one-time-key claim response in
//     hand: Olm session creation, encryption, the /sendToDevice body) and
//     BenchmarkDecryptBacklog/impl={myelin,mautrix}/events=10000 (10,000
//     Megolm events from 10 senders, replay table included);
//   - TestThreeClientsOneRoom: a myelin client (package client), a
//     mautrix-go client (goolm) and a matrix-nio client in one encrypted room
//     on a myelind started by the test, each decrypting the others.
//
// Run the comparison from the interop directory:
//
//	go test ./e2ee -run '^$' -bench . -benchtime 3x -count 6 | tee new.txt
//	benchstat -col /impl new.txt
//
// The cpu-ns/op metric is the process's user+system CPU time per operation,
// so cpu-ns/op above ns/op means both cores were used.
//
// Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
package e2ee
