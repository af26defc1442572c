/**
 * Hostile input against a SERVED KMS: `confidant kms serve` as a subprocess on a free port with
 * its self-signed certificate, spoken to over raw TLS sockets. Truncated, oversized (declared
 * and chunked), wrong-type and random bodies, a slowloris body and a flood from one source:
 * every answer is 4xx JSON (or the connection is closed), the process stays up, `/healthz`
 * answers afterwards, and neither its output nor its audit log holds a stack trace or a secret.
 */
import assert from "node:assert/strict";
import tls from "node:tls";
import { join } from "node:path";
import { toBase64 } from "../../lib/bytes.ts";
import { FileStore } from "../../kms/file_store.ts";
import { initKms } from "../../kms/server.ts";
import { serveKmsProcess } from "./_served_kms.ts";

interface RawAnswer {
  /** 0 when the connection closed without an HTTP answer. */
  status: number;
  contentType: string;
  body: string;
}

/** One TLS connection: `send` writes the request (maybe slowly), the answer is read to EOF. */
function exchange(
  port: number,
  send: (s: tls.TLSSocket) => unknown,
  timeoutMs = 30_000,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no answer in time"));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      const text = new TextDecoder().decode(
        chunks.reduce((a, c) => {
          const o = new Uint8Array(a.length + c.length);
          o.set(a);
          o.set(c, a.length);
          return o;
        }, new Uint8Array(0)),
      );
      const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
      if (!m) return resolve({ status: 0, contentType: "", body: text });
      const ct = /^content-type:\s*([^\r]*)$/im.exec(m[2])?.[1] ?? "";
      let body = m[3];
      if (/^transfer-encoding:\s*chunked/im.test(m[2])) {
        body = body.replace(/(^|\r\n)[0-9a-f]+\r\n/gi, "").replace(/\r\n$/g, "");
      }
      resolve({ status: Number(m[1]), contentType: ct, body });
    };
    let finished = false;
    const once = () => {
      if (finished) return;
      finished = true;
      done();
      socket.destroy();
    };
    socket.on("data", (d: Uint8Array) => {
      chunks.push(d);
      // A complete answer (headers and content-length bytes) need not wait for the close.
      const text = new TextDecoder().decode(d);
      const all = chunks.length === 1 ? text : new TextDecoder().decode(
        chunks.reduce((a, c) => {
          const o = new Uint8Array(a.length + c.length);
          o.set(a);
          o.set(c, a.length);
          return o;
        }, new Uint8Array(0)),
      );
      const head = all.indexOf("\r\n\r\n");
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(all.slice(0, head));
      if (head >= 0 && len && enc.encode(all.slice(head + 4)).length >= Number(len[1])) once();
    });
    socket.on("end", once);
    socket.on("close", once);
    socket.on("error", () => {/* a reset is a closed connection */});
    socket.once("secureConnect", async () => {
      try {
        await send(socket);
      } catch { /* the server may close early */ }
    });
  });
}

const enc = new TextEncoder();
const post = (path: string, body: Uint8Array | string, headers: Record<string, string> = {}) => {
  const b = typeof body === "string" ? enc.encode(body) : body;
  const h = {
    host: "127.0.0.1",
    "content-type": "application/json",
    "content-length": String(b.length),
    connection: "close",
    ...headers,
  };
  const head = `POST ${path} HTTP/1.1\r\n` +
    Object.entries(h).filter(([, v]) => v !== "").map(([k, v]) => `${k}: ${v}\r\n`).join("") +
    "\r\n";
  return (s: tls.TLSSocket) => {
    s.write(head);
    s.end(b);
  };
};

function assertJson4xx(a: RawAnswer, what: string, status?: number): void {
  assert.ok(a.status >= 400 && a.status < 500, `${what}: got ${a.status} ${a.body.slice(0, 200)}`);
  if (status) assert.equal(a.status, status, `${what}: ${a.body}`);
  assert.match(a.contentType, /application\/json/, what);
  const v = JSON.parse(a.body);
  assert.equal(typeof v.error, "string", what);
}

Deno.test("a served KMS answers hostile input with 4xx JSON and stays up", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-hostile-" });
  const kek = crypto.getRandomValues(new Uint8Array(32));
  const kekB64 = toBase64(kek);
  const state = join(dir, "state");
  const store = new FileStore(state);
  await store.ensureLayout();
  await initKms(store, kek, "hostile");
  await Deno.writeTextFile(join(dir, "kek"), kekB64 + "\n", { mode: 0o600 });
  await Deno.writeTextFile(join(dir, "policy.json"), '{"pcrs":{}}');
  const kms = await serveKmsProcess([
    "--state-dir",
    state,
    "--kek-file",
    join(dir, "kek"),
    "--policy",
    join(dir, "policy.json"),
  ]);
  const port = kms.port;
  const BEGIN = "/v1/attest/begin";
  const FINISH = "/v1/attest/finish";
  try {
    // The slow body runs alongside the other cases (it waits out the 10 s body deadline).
    const slow = exchange(port, async (s) => {
      const body = '{"variant":"tpm","ekCertificate":"' + "A".repeat(64) + '"}';
      s.write(
        `POST ${BEGIN} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
          `content-length: ${body.length}\r\n\r\n`,
      );
      for (const ch of body) {
        if (s.destroyed) return;
        s.write(ch);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }, 40_000);

    await t.step("truncated JSON", async () => {
      assertJson4xx(await exchange(port, post(BEGIN, '{"variant":"tpm","ekCert')), "trunc", 400);
      assertJson4xx(await exchange(port, post(FINISH, '{"session":')), "trunc finish", 400);
    });
    await t.step("a body shorter than its content-length, then EOF", async () => {
      const a = await exchange(port, (s) => {
        s.write(
          `POST ${BEGIN} HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\n{"variant":"tpm"`,
        );
        s.end();
      });
      if (a.status !== 0) assertJson4xx(a, "short body");
    });
    await t.step("oversized with content-length", async () => {
      const a = await exchange(port, (s) => {
        s.write(`POST ${BEGIN} HTTP/1.1\r\nhost: x\r\ncontent-length: 50000000\r\n\r\n{`);
        s.end();
      });
      assertJson4xx(a, "declared oversized", 413);
    });
    await t.step("oversized without content-length (chunked)", async () => {
      const a = await exchange(port, (s) => {
        s.write(`POST ${BEGIN} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n`);
        const chunk = "x".repeat(16 * 1024);
        for (let i = 0; i < 64; i++) s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
        s.end("0\r\n\r\n");
      });
      if (a.status !== 0) assertJson4xx(a, "chunked oversized", 413);
    });
    await t.step("wrong types and shapes", async () => {
      const bodies = [
        "[]",
        "null",
        '"tpm"',
        "42",
        '{"variant":5,"ekCertificate":"AA==","akPublic":"AA=="}',
        '{"variant":"tpm","ekCertificate":["AA=="],"akPublic":{}}',
        '{"variant":"tpm","ekCertificate":"%%%","akPublic":"AA=="}',
        '{"variant":"tpm","ekCertificate":"AA==","akPublic":"AA==","ekIntermediates":"x"}',
      ];
      for (const b of bodies) assertJson4xx(await exchange(port, post(BEGIN, b)), b, 400);
      const fin = '{"session":1,"activatedSecret":[],"evidence":"x","ephemeralPublicKey":null}';
      assertJson4xx(await exchange(port, post(FINISH, fin)), "finish types", 400);
      // A negative content-length is not HTTP: hyper refuses it before the app (bare 400).
      const a = await exchange(port, post(BEGIN, "{}", { "content-length": "-5" }));
      assert.ok(a.status === 0 || (a.status >= 400 && a.status < 500), String(a.status));
      assertJson4xx(
        await exchange(port, (s) => s.end(`GET ${BEGIN} HTTP/1.1\r\nhost: x\r\n\r\n`)),
        "GET on begin",
        405,
      );
    });
    await t.step("random bytes as body", async () => {
      for (let i = 0; i < 5; i++) {
        const b = crypto.getRandomValues(new Uint8Array(1 + i * 700));
        assertJson4xx(await exchange(port, post(i % 2 ? BEGIN : FINISH, b)), "random", 400);
      }
    });
    await t.step("random bytes instead of HTTP get no JSON and no crash", async () => {
      const a = await exchange(port, (s) => {
        s.end(crypto.getRandomValues(new Uint8Array(2048)));
      });
      // hyper answers a non-HTTP stream with a bare 400 or closes: never a 2xx/5xx.
      assert.ok(a.status === 0 || (a.status >= 400 && a.status < 500), String(a.status));
    });
    await t.step("many concurrent connections from one source: 4xx JSON, then 429", async () => {
      const answers = await Promise.all(
        Array.from(
          { length: 120 },
          () =>
            exchange(
              port,
              post(BEGIN, '{"variant":"tpm","ekCertificate":"AA==","akPublic":"AA=="}'),
            ),
        ),
      );
      for (const a of answers) assertJson4xx(a, "flood");
      const statuses = new Set(answers.map((a) => a.status));
      assert.ok(statuses.has(429), `some are rate limited: ${[...statuses]}`);
    });
    await t.step("the slow body is answered 408 or its connection closed", async () => {
      const a = await slow;
      if (a.status !== 0) assertJson4xx(a, "slowloris", 408);
    });
    await t.step("the process is up and /healthz answers", async () => {
      assert.ok(kms.alive());
      const a = await exchange(
        port,
        (s) => s.end(`GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`),
      );
      assert.equal(a.status, 200);
      assert.deepEqual(JSON.parse(a.body), { status: "ok" });
    });
  } finally {
    await kms.stop();
  }
  try {
    const audit = await Deno.readTextFile(join(state, "audit.jsonl")).catch(() => "");
    const master = await Deno.readTextFile(join(state, "master.json"));
    for (
      const [name, text] of [["stdout", kms.stdout()], ["stderr", kms.stderr()], ["audit", audit]]
    ) {
      assert.ok(
        !/\n\s+at \S+ \(|Error: .*\n\s+at /.test(text),
        `no stack trace in ${name}: ${text}`,
      );
      assert.ok(!text.includes(kekB64), `no KEK in ${name}`);
      assert.ok(!/"secret"|"salt"/.test(text), `no master secret fields in ${name}`);
      assert.ok(!text.includes(master.slice(20, 60)), `no sealed master in ${name}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
