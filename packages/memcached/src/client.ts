/**
 * The memcached binary protocol through memjs's low-level request API: memjs 1.3.2 has no gets/cas methods,
 * but `perform` sends any request and hands back the raw response with its status and CAS.
 */
import memjs from "memjs";
import { GeoWatchError } from "@geowatch/core";

/** The few memjs members used here (declared, not imported, so no SDK type leaks). */
interface RawResponse {
  header: { status: number; opcode: number; cas: Buffer; totalBodyLength: number };
  key: Buffer;
  extras: Buffer;
  val: Buffer;
}
interface MemjsServer {
  host: string;
  port: number;
  onResponse(seq: number, fn: ((r: RawResponse) => void) & { quiet?: boolean }): void;
  onError(seq: number, fn: (err: unknown) => void): void;
  write(buf: Buffer): void;
}
interface MemjsClient {
  servers: MemjsServer[];
  seq: number;
  incrSeq(): void;
  server(key: string): MemjsServer | null;
  close(): void;
}
interface MemjsModule {
  Client: { create(servers: string, options: Record<string, unknown>): MemjsClient };
  Utils: { makeRequestBuffer(opcode: number, key: string | Buffer, extras: string | Buffer, value: string | Buffer, opaque: number): Buffer };
}
const mem = memjs as unknown as MemjsModule;

export const OP = { get: 0x00, set: 0x01, add: 0x02, delete: 0x04, version: 0x0b, append: 0x0e, stat: 0x10, touch: 0x1c } as const;
export const STATUS = { ok: 0x00, notFound: 0x01, exists: 0x02, tooLarge: 0x03, notStored: 0x05, outOfMemory: 0x82, busy: 0x85, tempFailure: 0x86 } as const;

const STATUS_TEXT: Record<number, string> = {
  0x01: "key not found",
  0x02: "key exists",
  0x03: "value too large",
  0x04: "invalid arguments",
  0x05: "item not stored",
  0x06: "incr/decr on a non-numeric value",
  0x20: "authentication error",
  0x81: "unknown command",
  0x82: "out of memory",
  0x83: "not supported",
  0x84: "internal error",
  0x85: "busy",
  0x86: "temporary failure",
};
export const statusText = (s: number): string => STATUS_TEXT[s] ?? `status 0x${s.toString(16)}`;

export interface Reply {
  status: number;
  /** The key the server echoed (a stat's name in a stats list). */
  key: string;
  cas: Buffer;
  value: Buffer;
  extras: Buffer;
}

export interface Request {
  opcode: number;
  key: string;
  extras?: Buffer;
  value?: Buffer;
  /** Compare-and-set: the CAS a get returned. */
  cas?: Buffer;
}

export interface Link {
  /** One request to the server the key hashes to. Rejects with CONNECT when the server cannot be reached. */
  send(req: Request): Promise<Reply>;
  /** One request to every server (version, stats); `multi` collects replies until the empty one that ends a stats list. */
  each(opcode: number, key: string, multi: boolean): Promise<Array<{ server: string; replies: Reply[] }>>;
  close(): void;
  /** Called with every outcome that says whether the servers are reachable. */
  onReachable(fn: (ok: boolean, error?: string) => void): void;
}

const quietLogger = { log: () => undefined };

/** A memjs client with our own timeouts: a server that died mid-request never leaves a call hanging. */
export function openLink(servers: string[], timeoutMs: number): Link {
  const client = mem.Client.create(servers.join(","), {
    retries: 1, // the core retries a failed write; a silent resend here could append twice
    timeout: timeoutMs / 1000,
    conntimeout: timeoutMs / 1000,
    keepAlive: true,
    failover: false,
    logger: quietLogger,
  });
  let listener: ((ok: boolean, error?: string) => void) | undefined;
  const report = (ok: boolean, error?: string) => listener?.(ok, error);

  function buffer(req: Request, seq: number): Buffer {
    const buf = mem.Utils.makeRequestBuffer(req.opcode, req.key, req.extras ?? Buffer.alloc(0), req.value ?? Buffer.alloc(0), seq);
    if (req.cas) req.cas.copy(buf, 16);
    return buf;
  }

  function unreachable(where: string, err: unknown): GeoWatchError {
    const reason = err instanceof Error ? err.message : String(err);
    return new GeoWatchError("CONNECT", `memcached ${where} unreachable: ${reason}`, { backend: "memcached", cause: err, retryable: true });
  }

  /** Waits for one server's reply with a deadline of our own (memjs misses a socket closed under a request). */
  function exchange<T>(serv: MemjsServer, seq: number, buf: Buffer, handle: (r: RawResponse, done: (v: T) => void) => void, quiet: boolean): Promise<T> {
    const where = `${serv.host}:${serv.port}`;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs + 250);
      function fail(err: unknown) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const e = unreachable(where, err);
        report(false, e.message);
        reject(e);
      }
      const onReply = Object.assign(
        (r: RawResponse) => {
          if (settled) return;
          handle(r, (v) => {
            settled = true;
            clearTimeout(timer);
            report(true);
            resolve(v);
          });
        },
        { quiet },
      );
      serv.onResponse(seq, onReply);
      serv.onError(seq, fail);
      serv.write(buf);
    });
  }

  const reply = (r: RawResponse): Reply => ({ status: r.header.status, key: r.key.toString("utf8"), cas: Buffer.from(r.header.cas), value: Buffer.from(r.val), extras: Buffer.from(r.extras) });

  return {
    send(req) {
      client.incrSeq();
      const seq = client.seq;
      const serv = client.server(req.key);
      if (!serv) return Promise.reject(unreachable(servers.join(","), new Error("no servers available")));
      return exchange<Reply>(serv, seq, buffer(req, seq), (r, done) => done(reply(r)), false);
    },
    each(opcode, key, multi) {
      return Promise.all(
        client.servers.map((serv) => {
          client.incrSeq();
          const seq = client.seq;
          const replies: Reply[] = [];
          return exchange<{ server: string; replies: Reply[] }>(
            serv,
            seq,
            buffer({ opcode, key }, seq),
            (r, done) => {
              // A stats list ends with an empty reply; an error status ends it too.
              if (!multi || r.header.totalBodyLength === 0 || r.header.status !== STATUS.ok) {
                if (!multi || r.header.status !== STATUS.ok) replies.push(reply(r));
                done({ server: `${serv.host}:${serv.port}`, replies });
              } else replies.push(reply(r));
            },
            multi,
          );
        }),
      );
    },
    close() {
      client.close();
    },
    onReachable(fn) {
      listener = fn;
    },
  };
}
