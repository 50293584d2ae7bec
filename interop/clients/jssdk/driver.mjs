// Drives one matrix-js-sdk device (Element Web's SDK, with its rust crypto
// from @matrix-org/matrix-sdk-crypto-wasm and an in-memory crypto store) for
// the myelin interop tests, with the same JSON-lines protocol as
// ../nio/driver.py.
//
// Usage: node driver.mjs HOMESERVER_URL
//
// stdout carries only protocol lines; the SDK's logging goes to stderr.
import readline from "node:readline";

const out = process.stdout.write.bind(process.stdout);
for (const k of ["log", "info", "debug", "trace", "warn", "error"]) {
    console[k] = (...args) => process.stderr.write(`[${k}] ` + args.map(String).join(" ") + "\n");
}

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
logger.setLevel(process.env.JSSDK_LOG || "warn");

const WAIT_MS = 30000;
const homeserver = process.argv[2];
let client = null;
let password = null;
let ssssKey = null; // {id, key}: made by bootstrap on this device
let recoveryKey = null; // Uint8Array: given to restore_backup

function emit(obj) {
    out(JSON.stringify(obj) + "\n");
}

async function waitUntil(what, cond) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        if (await cond()) return;
        if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50)); // condition polling with a deadline
    }
}

function emitMessage(ev, decrypted) {
    if (ev.getType() !== "m.room.message") return;
    emit({
        event: "message",
        room: ev.getRoomId(),
        sender: ev.getSender(),
        body: ev.getContent().body,
        decrypted,
    });
}

const commands = {
    async register(c) {
        const tmp = sdk.createClient({ baseUrl: homeserver });
        let resp;
        try {
            resp = await tmp.registerRequest({ username: c.user, password: c.password, inhibit_login: true });
        } catch (e) {
            // 401 with the flows: answer the dummy stage with the session.
            if (!e.data || !e.data.session) throw e;
            resp = await tmp.registerRequest({
                username: c.user,
                password: c.password,
                inhibit_login: true,
                auth: { type: "m.login.dummy", session: e.data.session },
            });
        }
        return { user_id: resp.user_id };
    },

    async login(c) {
        const tmp = sdk.createClient({ baseUrl: homeserver });
        const resp = await tmp.loginRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: c.user },
            password: c.password,
            initial_device_display_name: c.device_name,
        });
        password = c.password;
        client = sdk.createClient({
            baseUrl: homeserver,
            userId: resp.user_id,
            accessToken: resp.access_token,
            deviceId: resp.device_id,
            cryptoCallbacks: {
                // The secret-storage key made by bootstrap, kept in memory
                // (Element keeps it in a short-lived cache the same way).
                getSecretStorageKey: async ({ keys }) => {
                    if (ssssKey && keys[ssssKey.id]) return [ssssKey.id, ssssKey.key];
                    if (recoveryKey) return [Object.keys(keys)[0], recoveryKey];
                    return null;
                },
                cacheSecretStorageKey: (id, info, key) => {
                    ssssKey = { id, key };
                },
            },
        });
        await client.initRustCrypto({ useIndexedDB: false });
        client.on(sdk.RoomEvent.Timeline, (ev) => {
            if (!ev.isEncrypted()) emitMessage(ev, false);
            else if (ev.isDecryptionFailure()) emit({ event: "undecryptable", room: ev.getRoomId(), sender: ev.getSender() });
            else if (ev.getClearContent()) emitMessage(ev, true);
        });
        client.on(sdk.MatrixEventEvent.Decrypted, (ev, err) => {
            if (err || ev.isDecryptionFailure()) {
                emit({ event: "undecryptable", room: ev.getRoomId(), sender: ev.getSender(), error: String(err || ev.decryptionFailureReason) });
                return;
            }
            emitMessage(ev, true);
        });
        let prepared = false;
        client.on(sdk.ClientEvent.Sync, (state, prev, data) => {
            if (state === "PREPARED" || state === "SYNCING") prepared = true;
            if (state === "ERROR") emit({ event: "sync_failed", error: String(data && data.error) });
        });
        await client.startClient({ initialSyncLimit: 20 });
        await waitUntil("the first sync", () => prepared);
        return { user_id: resp.user_id, device_id: resp.device_id };
    },

    async create_room(c) {
        const resp = await client.createRoom({
            preset: "private_chat",
            invite: c.invite || [],
            initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
        });
        await waitUntil(`room ${resp.room_id} in sync`, () => client.getRoom(resp.room_id)?.getMyMembership() === "join");
        return { room: resp.room_id };
    },

    async wait_invited(c) {
        await waitUntil(`invite to ${c.room}`, () => client.getRoom(c.room)?.getMyMembership() === "invite");
        return {};
    },

    async join(c) {
        await client.joinRoom(c.room);
        await waitUntil(`own join in ${c.room}`, () => client.getRoom(c.room)?.getMyMembership() === "join");
        await waitUntil(`${c.room} encrypted`, () => client.getCrypto().isEncryptionEnabledInRoom(c.room));
        return {};
    },

    async wait_joined(c) {
        await waitUntil(`${c.user} joined in ${c.room}`, () => client.getRoom(c.room)?.getMember(c.user)?.membership === "join");
        return {};
    },

    async wait_device(c) {
        await waitUntil(`device ${c.user}/${c.device}`, async () => {
            const m = await client.getCrypto().getUserDeviceInfo([c.user], true);
            return m.get(c.user)?.has(c.device) === true;
        });
        return {};
    },

    // bootstrap does what Element's "Set up Secure Backup" does: cross-signing
    // keys (uploaded with password UIA if the server asks), secret storage
    // with a new key, and a new key backup.
    async bootstrap(c) {
        const crypto = client.getCrypto();
        let generated = null;
        await crypto.bootstrapCrossSigning({
            authUploadDeviceSigningKeys: async (makeRequest) => {
                try {
                    await makeRequest(null);
                } catch (e) {
                    if (e.httpStatus !== 401 || !e.data || !e.data.flows) throw e;
                    await makeRequest({
                        type: "m.login.password",
                        identifier: { type: "m.id.user", user: client.getUserId() },
                        password,
                        session: e.data.session,
                    });
                }
            },
        });
        await crypto.bootstrapSecretStorage({
            createSecretStorageKey: async () => {
                generated = await crypto.createRecoveryKeyFromPassphrase();
                return generated;
            },
            setupNewSecretStorage: true,
            setupNewKeyBackup: true,
        });
        // The SDK enables a new backup once it has checked its signature;
        // ask for that check now rather than waiting for the background one.
        const check = await crypto.checkKeyBackupAndEnable();
        const status = {
            backup_trust: check ? check.trustInfo : null,
            recovery_key: generated && generated.encodedPrivateKey,
            cross_signing_ready: await crypto.isCrossSigningReady(),
            secret_storage_ready: await crypto.isSecretStorageReady(),
            backup_version: await crypto.getActiveSessionBackupVersion(),
        };
        if (!status.cross_signing_ready || !status.secret_storage_ready || !status.backup_version) {
            throw new Error(`bootstrap incomplete: ${JSON.stringify(status)}`);
        }
        return status;
    },

    // restore_backup does what Element does on a new device given the
    // recovery key: fetch the backup key from secret storage, then download
    // and import the room keys from the server-side backup.
    async restore_backup(c) {
        recoveryKey = decodeRecoveryKey(c.recovery_key);
        const crypto = client.getCrypto();
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        const r = await crypto.restoreKeyBackup();
        return { imported: r.imported, total: r.total };
    },

    // backed_up_keys counts the room keys the server holds in the backup.
    async backed_up_keys(c) {
        const version = await client.getCrypto().getActiveSessionBackupVersion();
        const resp = await client.http.authedRequest("GET", "/room_keys/keys", { version });
        let n = 0;
        for (const room of Object.values(resp.rooms || {})) n += Object.keys(room.sessions || {}).length;
        return { count: n, version };
    },

    async send(c) {
        const resp = await client.sendMessage(c.room, { msgtype: "m.text", body: c.body });
        return { event_id: resp.event_id };
    },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
    const c = JSON.parse(line);
    if (c.cmd === "quit") break;
    try {
        const fn = commands[c.cmd];
        if (!fn) throw new Error(`unknown command ${c.cmd}`);
        const result = await fn(c);
        emit({ ...result, id: c.id, ok: true });
    } catch (e) {
        process.stderr.write(`${c.cmd}: ${e && e.stack}\n`);
        emit({ id: c.id, ok: false, error: `${e && e.name}: ${e && e.message} ${e && e.data ? JSON.stringify(e.data) : ""}` });
    }
}
if (client) client.stopClient();
process.exit(0);
