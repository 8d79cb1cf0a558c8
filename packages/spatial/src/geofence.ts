/**
 * `geofence`: turns positions of tracks into enter/exit/inside/outside/cross events against indexed fences,
 * keeping per track the fences it is inside in a `GeofenceState`.
 *
 * State follows delivery: a batch's changes go to an in-memory overlay that later batches read, and reach
 * the durable state only in the batch's `commit` (after its events were delivered, before its input is
 * acknowledged). Each track state records the input position it covers, so input replayed after a crash
 * between that write and the acknowledgement is skipped instead of compared with newer state.
 */
import { resolve } from "node:path";
import { GeoWatchError } from "@geowatch/core";
import type { DeadLetter, Message, Metadata, Position as StreamPosition, Stage, StageOutput } from "@geowatch/core";
import { resolveFences } from "./fence-index.js";
import type { FenceIndex } from "./fence-index.js";
import { isValidPoint } from "./geojson.js";
import type { Geometry } from "./geojson.js";
import { compilePath, locate, problemReason } from "./message.js";
import type { Located } from "./message.js";
import { geofenceSchema, parseOptions } from "./options.js";
import type { GeofenceEvent, GeofenceOptions, SpatialStageContext } from "./options.js";
import { compareOffsets } from "./offsets.js";
import { memoryGeofenceState, onlyPosition, sqliteGeofenceState } from "./state.js";
import type { CoveredPositions, GeofenceState, TrackState } from "./state.js";
import { kafkaGeofenceState } from "./state-kafka.js";
import type { KafkaStateOptions } from "./state-kafka.js";
import { postgresGeofenceState } from "./state-postgres.js";
import { PointWorkers } from "./point-workers.js";
import type { PointHits, PointQuery } from "./point-workers.js";
import type { PostgresStateOptions } from "./state-postgres.js";

export { compareOffsets } from "./offsets.js";

const NONE: string[] = [];

/** Batches with fewer messages than this are tested on the main thread even with `workers`. */
const WORKER_MIN_BATCH = 64;

/** Most committed track states kept in memory in front of an SQLite state (oldest dropped first). */
const CACHE_TRACKS = 100_000;

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}

/** Whether a state already includes the input at `p` (only when the offsets are comparable). */
function covers(covered: CoveredPositions, p: StreamPosition): boolean {
  if (!Object.hasOwn(covered, p.stream)) return false;
  const c = compareOffsets(p.offset, covered[p.stream]!);
  return c !== undefined && c <= 0;
}

/** `covered` advanced to `p` on its stream (a new object: states are shared, never mutated). */
function cover(covered: CoveredPositions | undefined, p: StreamPosition): CoveredPositions {
  // One stream (a file, a partition) is the usual case: a one-key literal stays a fast-mode object, where a
  // null-prototype copy would be a dictionary. A computed key is an own property, even "__proto__".
  let others = false;
  if (covered !== undefined) for (const k in covered) if (k !== p.stream) others = true;
  if (!others) return { [p.stream]: p.offset };
  const next: Record<string, string | number> = {};
  const put = (k: string, v: string | number): void => {
    Object.defineProperty(next, k, { value: v, enumerable: true, writable: true, configurable: true });
  };
  for (const k of Object.keys(covered!)) put(k, covered![k]!);
  put(p.stream, p.offset);
  return next;
}

/**
 * Everything the stage holds about one track, in one object (one Map lookup per point, one cache line):
 * the committed state when known, the newest change of a batch not committed yet, and the batch's scratch.
 */
interface TrackRec {
  /** Whether `committed` is what the durable state holds (a read cache; never true for states it cannot trust). */
  known: boolean;
  committed: TrackState | undefined;
  /** The newest change of a batch not yet committed (later batches read it before the durable state). */
  pending: TrackState | undefined;
  /** The batch that made `pending` (0: none). */
  seq: number;
  /** The batch running now that visits this track, and its working copy of the state. */
  mark: number;
  cur: TrackState | undefined;
  /**
   * The fences of the newest state known here (`pending`, else `committed`; `cur` while a batch runs): read for
   * every point, so kept in the record itself instead of behind a pointer to the state (a cache miss per point).
   */
  fences: string[];
  /** Whether the batch in `mark` changed the track. */
  changed: boolean;
}

/** The geometry of a bare point Feature (the stage's usual message), else undefined. */
function bareFeaturePoint(v: unknown): Extract<Geometry, { type: "Point" }> | undefined {
  const f = v as { type?: unknown; geometry?: unknown } | null;
  return f !== null && typeof f === "object" && f.type === "Feature" && isValidPoint(f.geometry) ? f.geometry : undefined;
}

/** The record of a track the stage knows nothing about yet. */
function newRec(): TrackRec {
  return { known: false, committed: undefined, pending: undefined, seq: 0, mark: 0, cur: undefined, fences: NONE, changed: false };
}

/** A representative point of a geometry for `cross` (its first position). */
function firstPosition(g: Geometry): [number, number] {
  let cur: unknown = g.type === "GeometryCollection" ? undefined : g.coordinates;
  if (g.type === "GeometryCollection") return g.geometries.length > 0 ? firstPosition(g.geometries[0]!) : [NaN, NaN];
  while (Array.isArray(cur) && Array.isArray(cur[0])) cur = cur[0];
  const p = cur as number[] | undefined;
  return p && p.length >= 2 ? [p[0]!, p[1]!] : [NaN, NaN];
}

/** Geofence events as envelopes: `{metadata: {actiontype, targettype: "geofence", fence, track, date}, data: feature}`. */
export function geofence(options: GeofenceOptions, ctx: SpatialStageContext = {}): Stage {
  const o = parseOptions<GeofenceOptions>(geofenceSchema, options, "geofence");
  const name = ctx.name ?? "geofence";
  const index: FenceIndex = resolveFences(o.fences, { idProperty: o.idProperty, baseDir: ctx.baseDir, ...(ctx.logger ? { logger: ctx.logger } : {}) });
  const events = new Set<GeofenceEvent>(o.events ?? ["enter", "exit"]);
  const wantEnter = events.has("enter"), wantExit = events.has("exit"), wantInside = events.has("inside");
  const wantOutside = events.has("outside"), wantCross = events.has("cross");
  /** Whether some output is made for every position, changed or not. */
  const perPosition = wantInside || wantOutside || wantCross || o.passThrough === true;
  const trackOf = o.trackId === undefined ? undefined : compilePath(o.trackId);
  // A SQLite file named in options is opened in open(), not here: building a stage (`geowatch validate`)
  // has no side effects.
  const sqlitePath = typeof o.state === "object" && "sqlite" in o.state ? resolve(ctx.baseDir ?? process.cwd(), o.state.sqlite) : undefined;
  const pgOptions = typeof o.state === "object" && "postgres" in o.state ? (o.state as { postgres: PostgresStateOptions }).postgres : undefined;
  const kafkaOptions = typeof o.state === "object" && "kafka" in o.state ? (o.state as { kafka: KafkaStateOptions }).kafka : undefined;
  const opensState = sqlitePath !== undefined || pgOptions !== undefined || kafkaOptions !== undefined;
  const ownsState = o.state === undefined || typeof o.state === "string" || opensState;
  let state: GeofenceState | undefined = opensState
    ? undefined
    : o.state === undefined || o.state === "memory" ? memoryGeofenceState() : (o.state as GeofenceState);
  // Shared by a consumer group's processes: memory of a stream's tracks holds only while the stream is read
  // without a gap. `expected`: per stream, the offset of the next record when nothing was skipped.
  const partitioned = pgOptions !== undefined || kafkaOptions !== undefined || (state?.partitioned ?? false);
  const expected = new Map<string, string | number>();
  // Counts restores, so a commit computed before one does not put its (maybe stale) states in the cache.
  let restores = 0;
  let closed = false;
  /** The `workers` threads, started by open(). */
  let points: PointWorkers | undefined;
  // Per track: its committed state when known, the newest change not yet committed (later batches read it
  // before the durable state), and the running batch's working copy.
  const recs = new Map<string, TrackRec>();
  // Per input stream, the highest offset a state this stage knows may cover: every offset it processed and every
  // `covered` offset it read from the durable state. Input beyond it cannot be a replay, so the replay check (a
  // look at the track state's `covered` object) is skipped for it.
  const reach = new Map<string, string | number>();
  let seq = 0;
  /** Numbers the runs (a record's `mark`); a run is never entered while another one is unfinished. */
  let runs = 0;
  // Set while an async (state read) batch runs: the next batch waits for it, as it must see its changes.
  let busy: Promise<unknown> | undefined;
  // The committed states a record may keep as known: those of an SQLite file or a memory state this stage opened
  // itself (it is their only writer, so what it read or wrote last is what they hold, and a batch reads SQLite only
  // for tracks it has not seen lately). PostgreSQL shared by a group: the same holds for the streams this process
  // reads without a gap (what is known is dropped whenever a stream restarts elsewhere than where it stopped).
  const cacheable = sqlitePath !== undefined || pgOptions !== undefined || (ownsState && !opensState);
  /** Committed states of tracks the stage does not know, in one `get`. */
  const readDurable = (durable: GeofenceState, tracks: string[]): ReadonlyArray<TrackState | undefined> | Promise<ReadonlyArray<TrackState | undefined>> =>
    partitioned ? retrying("read", () => durable.get(tracks)) : durable.get(tracks);
  /** Keeps at most CACHE_TRACKS records: drops the oldest that hold no change and are not in the running batch. */
  const evict = (): void => {
    let over = recs.size - CACHE_TRACKS;
    if (over <= 0) return;
    for (const [track, r] of recs) {
      if (r.seq !== 0 || r.mark === runs) continue;
      recs.delete(track);
      if (--over === 0) return;
    }
  };

  const ids = index.fences.map((f) => f.id);
  // One shared array per fence: most points are in at most one fence, so this spares an allocation and
  // lets "same fences as before" be an identity check.
  const single = ids.map((id) => [id]);

  /** Sorted ids of the `n` fences whose indices start at `hits[at]` (the shared NONE or one-fence array when it can). */
  const idsOf = (hits: Int32Array, at: number, n: number): string[] => {
    if (n === 0) return NONE;
    if (n === 1) return single[hits[at]!]!;
    const out: string[] = [];
    for (let k = 0; k < n; k++) out.push(ids[hits[at + k]!]!);
    return out.sort();
  };

  /** A batch's points submitted to the workers; `slot`: per batch index, the point's place in the query or -1. */
  interface Sent {
    slot: Int32Array;
    q: PointQuery;
  }
  /** The batches given to prepare(): their points, submitted to the workers. */
  const prepared = new WeakMap<Message[], Sent>();
  /** Submits the points of a batch's point Features to the workers. */
  const sendPoints = (pool: PointWorkers, batch: Message[]): Sent => {
    const slot = new Int32Array(batch.length);
    const xy = new Float64Array(2 * batch.length);
    let np = 0;
    for (let i = 0; i < batch.length; i++) {
      const g = bareFeaturePoint(batch[i]!.value);
      if (g !== undefined) {
        const c = g.coordinates;
        slot[i] = np;
        xy[2 * np] = c[0]!;
        xy[2 * np + 1] = c[1]!;
        np++;
      } else slot[i] = -1;
    }
    return { slot, q: pool.submit(xy, np) };
  };

  /** Sorted ids of the fences a geometry is in. */
  const fencesOf = (g: Geometry): string[] => {
    if (g.type === "Point") return idsOf(index.hits, 0, index.queryPoint(g.coordinates[0]!, g.coordinates[1]!));
    const m = index.matching(g, "intersects");
    return m.length === 0 ? NONE : m.map((i) => ids[i]!).sort();
  };

  /**
   * Runs a batch: with the workers' answer for its points when they tested them (`slot` and `h`). Each message is
   * computed as soon as its track's state is at hand; from the first track whose state must be read from the
   * durable state on, the rest of the batch waits for that read (one `get` for all of them), in order.
   */
  const run = (batch: Message[], durable: GeofenceState, slot?: Int32Array, h?: PointHits): StageOutput | Promise<StageOutput> => {
    const dead: DeadLetter[] = [];
    const pass: Message[] = [];
    const mark = ++runs;
    // Tracks whose committed state is not known: read from the durable state in one `get`.
    const missing: string[] = [];
    const missingRecs: TrackRec[] = [];
    // The messages after the first missing track, computed once the read is done (null loc: a bare Feature).
    const later: Array<{ msg: Message; loc: Located | null; geometry: Geometry; rec: TrackRec; track: string; tested: string[] | undefined }> = [];
    const changedRecs: TrackRec[] = [];
    const changedTracks: string[] = [];
    // The stream of the last position seen and its reach, kept here while a batch stays on one stream.
    let rs: string | undefined;
    let ro: string | number | undefined;
    let now: string | undefined;
    const dateFor = (msg: Message, loc: Located | null): string => {
      const d = loc?.metadata?.date ?? msg.metadata?.date;
      if (typeof d === "string") return d;
      if (msg.timestamp !== undefined) return new Date(msg.timestamp).toISOString();
      return (now ??= new Date().toISOString());
    };
    const event = (msg: Message, loc: Located | null, actiontype: GeofenceEvent, fence: string | null, track: string): Message => {
      const metadata: Metadata = { actiontype, targettype: "geofence", fence, track, date: dateFor(msg, loc) };
      const out: Message = { value: { metadata, data: loc === null ? msg.value : loc.feature }, metadata, key: track };
      if (msg.headers !== undefined) out.headers = msg.headers;
      if (msg.source !== undefined) out.source = msg.source;
      if (msg.timestamp !== undefined) out.timestamp = msg.timestamp;
      return out;
    };

    /** Advances a track's working copy (`rec.cur`) by one message; `tested`: its fences when the workers tested it. */
    const step = (msg: Message, loc: Located | null, geometry: Geometry, rec: TrackRec, track: string, tested: string[] | undefined): void => {
      const prev = rec.cur;
      const at = msg.position;
      if (at !== undefined) {
        if (at.stream !== rs) {
          if (rs !== undefined) reach.set(rs, ro!);
          rs = at.stream;
          ro = reach.get(rs);
        }
        if (ro !== undefined && compareOffsets(at.offset, ro) === 1) ro = at.offset;
        else {
          // Replayed input the state already includes: its events went out before the state was stored.
          if (prev?.covered !== undefined && covers(prev.covered, at)) return;
          if (ro === undefined || compareOffsets(at.offset, ro) === 1) ro = at.offset;
        }
      }
      const inNow = tested ?? fencesOf(geometry);
      // The usual case: the same fences as before (the same shared array), and no event for every position.
      if (inNow === rec.fences && !perPosition) return;
      change(msg, loc, geometry, rec, track, inNow, prev, at);
    };

    /** Events and the new working copy for a message whose fences changed, or for `cross`/`inside`/`outside`/`passThrough`. */
    const change = (msg: Message, loc: Located | null, geometry: Geometry, rec: TrackRec, track: string, inNow: string[], prev: TrackState | undefined, at: StreamPosition | undefined): void => {
      const before = rec.fences;
      let same = before === inNow || before.length === inNow.length;
      for (let j = 0; same && before !== inNow && j < inNow.length; j++) same = before[j] === inNow[j];
      if (!same && wantExit) for (const f of before) if (!inNow.includes(f)) pass.push(event(msg, loc, "exit", f, track));
      let pos: [number, number] | undefined;
      if (wantCross) {
        pos = firstPosition(geometry);
        if (prev !== undefined && Number.isFinite(prev.x) && Number.isFinite(prev.y)) {
          const ax = prev.x, ay = prev.y, bx = pos[0], by = pos[1];
          const hit = index.candidates(Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by))
            .map((i) => ids[i]!).filter((f) => !before.includes(f) && !inNow.includes(f)).sort();
          for (const f of hit) {
            if (index.segmentCrosses(index.indexOf(f), ax, ay, bx, by)) pass.push(event(msg, loc, "cross", f, track));
          }
        }
      }
      if (!same && wantEnter) for (const f of inNow) if (!before.includes(f)) pass.push(event(msg, loc, "enter", f, track));
      if (wantInside) for (const f of inNow) pass.push(event(msg, loc, "inside", f, track));
      if (wantOutside && inNow.length === 0) pass.push(event(msg, loc, "outside", null, track));
      if (o.passThrough) pass.push(msg);
      if (!same || pos !== undefined) {
        // Always the same four keys: one object shape on the hot path.
        const covered = at === undefined ? prev?.covered : cover(prev?.covered, at);
        rec.cur = { fences: inNow, x: pos?.[0] ?? NaN, y: pos?.[1] ?? NaN, covered };
        rec.fences = inNow;
        if (!rec.changed) {
          rec.changed = true;
          changedRecs.push(rec);
          changedTracks.push(track);
        }
      }
    };

    /** The batch's output: its events, dead letters and the commit of its changed tracks. */
    const finish = (): StageOutput => {
      if (rs !== undefined) reach.set(rs, ro!);
      const out: StageOutput = dead.length > 0 ? { pass, dead } : { pass };
      if (changedRecs.length > 0) {
        const mine = ++seq;
        const entries: Array<readonly [string, TrackState]> = [];
        for (let i = 0; i < changedRecs.length; i++) {
          const rec = changedRecs[i]!, st = rec.cur!;
          entries.push([changedTracks[i]!, st]);
          rec.pending = st;
          rec.seq = mine;
        }
        out.commit = commitOf(durable, entries, mine);
      }
      if (recs.size > CACHE_TRACKS) evict();
      return out;
    };

    // Where the next point's fence hits start in the workers' answer.
    let hitAt = 0;
    for (let i = 0; i < batch.length; i++) {
      const message = batch[i]!;
      let geometry: Geometry;
      let loc: Located | null = null;
      let tested: string[] | undefined;
      const j = slot === undefined ? -1 : slot[i]!;
      if (j >= 0) {
        // A point Feature (checked by sendPoints) the workers tested.
        const c = h!.counts[j]!;
        tested = idsOf(h!.hits, hitAt, c);
        hitAt += c;
        geometry = (message.value as { geometry: Geometry }).geometry;
      } else {
        const g = bareFeaturePoint(message.value);
        if (g !== undefined) geometry = g;
        else {
          const r = locate(message.value);
          if (!r.ok) {
            dead.push({ message, reason: problemReason(name, r.problem) });
            continue;
          }
          geometry = r.geometry;
          loc = r;
        }
      }
      const t = trackOf === undefined ? message.key : trackOf(message.value);
      if (typeof t !== "string" && typeof t !== "number") {
        const where = o.trackId === undefined ? "the message key" : `value.${o.trackId}`;
        dead.push({ message, reason: `[geowatch] [spatial] ${name}: no track id (string or number) at ${where}` });
        continue;
      }
      const track = typeof t === "string" ? t : String(t);
      if (partitioned && trackOf !== undefined && message.key !== track) {
        // Partitioned state follows the input partitions: a track's positions must all be in one partition.
        dead.push({
          message,
          reason: `[geowatch] [spatial] ${name}: input not keyed by track (key ${message.key === undefined ? "absent" : JSON.stringify(message.key)}, track ${JSON.stringify(track)}); state shared by a consumer group needs the input topic keyed by the track id`,
        });
        continue;
      }
      let rec = recs.get(track);
      if (rec === undefined) {
        rec = newRec();
        recs.set(track, rec);
      }
      if (rec.mark !== mark) {
        rec.mark = mark;
        rec.changed = false;
        if (rec.seq !== 0) rec.cur = rec.pending;
        else if (rec.known) rec.cur = rec.committed;
        else {
          rec.cur = undefined;
          missing.push(track);
          missingRecs.push(rec);
        }
      }
      if (missing.length === 0) step(message, loc, geometry, rec, track, tested);
      else later.push({ msg: message, loc, geometry, rec, track, tested });
    }
    if (missing.length === 0) return finish();

    const fill = (got: ReadonlyArray<TrackState | undefined>): StageOutput => {
      for (let k = 0; k < missingRecs.length; k++) {
        const rec = missingRecs[k]!, st = got[k];
        rec.cur = st;
        rec.fences = st?.fences ?? NONE;
        if (st?.covered !== undefined) extendReach(st.covered);
        if (cacheable) {
          rec.known = true;
          rec.committed = st;
        }
      }
      for (const l of later) step(l.msg, l.loc, l.geometry, l.rec, l.track, l.tested);
      return finish();
    };
    const got = readDurable(durable, missing);
    return isPromise(got) ? got.then(fill) : fill(got);
  };

  /** A batch with the workers' answer for its points (waited for when not there yet), or tested here. */
  const start = (batch: Message[], durable: GeofenceState): StageOutput | Promise<StageOutput> => {
    if (points === undefined || batch.length < WORKER_MIN_BATCH) return run(batch, durable);
    const sent = prepared.get(batch) ?? sendPoints(points, batch);
    prepared.delete(batch);
    const h = points.take(sent.q);
    if (h !== undefined) return run(batch, durable, sent.slot, h);
    return points.wait(sent.q).then((got) => run(batch, durable, sent.slot, got));
  };

  return {
    name,
    async open() {
      if (closed) throw new GeoWatchError("CLOSED", `${name}: stage is closed`, { backend: "spatial" });
      if ((o.workers ?? 0) > 0 && points === undefined) {
        points = PointWorkers.start(index, o.workers!, ctx.logger, name);
        await points?.ready;
      }
      if (state !== undefined) return;
      if (sqlitePath !== undefined) state = sqliteGeofenceState(sqlitePath);
      else if (pgOptions !== undefined) state = await postgresGeofenceState(pgOptions, ctx.logger);
      else if (kafkaOptions !== undefined) state = await kafkaGeofenceState(kafkaOptions, ctx.logger);
    },
    prepare(batch: Message[]): void {
      if (points !== undefined && !closed && batch.length >= WORKER_MIN_BATCH && !prepared.has(batch)) prepared.set(batch, sendPoints(points, batch));
    },
    process(batch: Message[]): StageOutput | Promise<StageOutput> {
      const durable = state;
      if (durable === undefined || closed) {
        throw new GeoWatchError(
          "CLOSED",
          closed ? `${name}: stage is closed` : `${name}: state ${sqlitePath !== undefined ? JSON.stringify(sqlitePath) : ""} is not open (call open() before process())`,
          { backend: "spatial" },
        );
      }
      const gaps = partitioned ? discontinuous(batch) : undefined;
      if (gaps !== undefined) {
        const go = () => restore(durable, gaps).then(() => start(batch, durable));
        return serialize(busy !== undefined ? busy.then(go, go) : go());
      }
      if (busy !== undefined) return serialize(busy.then(() => start(batch, durable), () => start(batch, durable)));
      const r = start(batch, durable);
      return isPromise(r) ? serialize(r) : r;
    },
    async close() {
      if (closed) return;
      closed = true;
      recs.clear();
      const pool = points;
      points = undefined;
      await pool?.close();
      const s = state;
      state = undefined;
      if (ownsState) await s?.close?.();
    },
  };

  /** Raises `reach` to the offsets a state read from the durable state covers. */
  function extendReach(covered: CoveredPositions): void {
    for (const stream in covered) {
      if (!Object.hasOwn(covered, stream)) continue;
      const offset = covered[stream]!, r = reach.get(stream);
      // An offset that does not compare with the reach is not an integer (or the reach is not): `covers` never
      // holds for it, and input whose offset does not compare with the reach gets the full check anyway.
      if (r === undefined || compareOffsets(offset, r) === 1) reach.set(stream, offset);
    }
  }

  /**
   * A batch's commit: writes its changed tracks, then drops them from the overlay (unless a later batch changed
   * them again: that batch's commit writes them). Made out here, not inside `run`, so that the closure the broker
   * keeps until the batch is delivered holds only the changed states, not the batch's decoded messages.
   */
  function commitOf(durable: GeofenceState, entries: Array<readonly [string, TrackState]>, mine: number): () => void | Promise<void> {
    const restoresAt = restores;
    const settle = (): void => {
      for (const [track, st] of entries) {
        let rec = recs.get(track);
        if (rec !== undefined && rec.seq === mine) {
          rec.seq = 0;
          rec.pending = undefined;
        }
        if (!cacheable || restores !== restoresAt) continue;
        if (rec === undefined) {
          rec = newRec();
          recs.set(track, rec);
        }
        rec.known = true;
        rec.committed = st;
        // Without a later batch's change, this state is the newest.
        if (rec.seq === 0) rec.fences = st.fences;
      }
      if (recs.size > CACHE_TRACKS) evict();
    };
    return () => {
      const wrote = durable.set(entries);
      if (isPromise(wrote)) return wrote.then(settle);
      settle();
    };
  }

  /**
   * The streams of a batch that do not continue where this process left them (first read, a partition taken
   * over, a seek back after a rebalance): what it holds of their tracks may be stale. Updates `expected`.
   * Called in processing order. Only the first record of a stream in a batch is compared: one receive never
   * spans a rebalance, so a gap inside a batch is input nobody processed. A gap between batches (a record
   * that failed to decode or was filtered out, a transaction marker) also counts: it costs a restore, never a
   * wrong event.
   */
  function discontinuous(batch: Message[]): string[] | undefined {
    let out: string[] | undefined;
    let stream: string | undefined;
    let next: string | number | undefined;
    let seen: Set<string> | undefined;
    for (const m of batch) {
      const p = m.position;
      if (p === undefined) continue;
      if (p.stream !== stream) {
        if (stream !== undefined) expected.set(stream, next!);
        stream = p.stream;
        if (seen === undefined || !seen.has(stream)) {
          (seen ??= new Set()).add(stream);
          const want = expected.get(stream);
          if (want === undefined || compareOffsets(want, p.offset) !== 0) (out ??= []).push(stream);
        }
      }
      next = p.next;
    }
    if (stream !== undefined) expected.set(stream, next!);
    return out;
  }

  /** Forgets what this process holds of the streams' tracks, then has the store bring them up to date. */
  async function restore(durable: GeofenceState, streams: string[]): Promise<void> {
    restores++;
    // What is known of committed states is a read cache only: cheaper to drop whole (restores are rare) than to
    // sort out which entries are stale. Changes not yet committed of the restarted streams' tracks go too.
    const gone = new Set(streams);
    for (const [track, r] of recs) {
      if (r.seq !== 0 && gone.has(onlyPosition(r.pending!)?.stream ?? "")) {
        r.seq = 0;
        r.pending = undefined;
      }
      if (r.seq === 0) recs.delete(track);
      else {
        r.known = false;
        r.committed = undefined;
      }
    }
    const t0 = Date.now();
    if (durable.restore !== undefined) await retrying("restore", () => durable.restore!(streams));
    ctx.logger?.info("geofence: streams (re)started; state restored", { stage: name, streams, ms: Date.now() - t0 });
  }

  /**
   * A shared store that cannot be read (PostgreSQL restarting, Kafka electing a leader) holds the batch back
   * instead of failing it, which would dead-letter its messages: retried with backoff until it answers or the
   * stage closes, each failure logged. Errors that are not retryable (a wrong config) fail at once.
   */
  async function retrying<T>(what: string, fn: () => T | Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (closed || !(err instanceof GeoWatchError) || err.retryable !== true) throw err;
        const ms = Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
        ctx.logger?.error(`geofence: shared state ${what} failed; retrying`, { stage: name, attempt, inMs: ms, error: err.message });
        await new Promise((r) => setTimeout(r, ms));
      }
    }
  }

  /** Makes the next batch wait for this one (its changes must be in the overlay before the next reads it). */
  function serialize<T>(p: Promise<T>): Promise<T> {
    busy = p;
    const clear = (): void => {
      if (busy === p) busy = undefined;
    };
    void p.then(clear, clear);
    return p;
  }
}
