/**
 * `geofence`: turns positions of tracks into enter/exit/inside/outside/cross events against indexed fences,
 * keeping per track the fences it is inside in a `GeofenceState`.
 */
import { resolve } from "node:path";
import type { DeadLetter, Message, Metadata, Stage, StageOutput } from "@geowatch/core";
import { resolveFences } from "./fence-index.js";
import type { FenceIndex } from "./fence-index.js";
import { isValidPoint } from "./geojson.js";
import type { Geometry } from "./geojson.js";
import { compilePath, locate, problemReason } from "./message.js";
import type { Located } from "./message.js";
import { geofenceSchema, parseOptions } from "./options.js";
import type { GeofenceEvent, GeofenceOptions, SpatialStageContext } from "./options.js";
import { memoryGeofenceState, sqliteGeofenceState } from "./state.js";
import type { GeofenceState, TrackState } from "./state.js";

const NONE: string[] = [];

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
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
  const index: FenceIndex = resolveFences(o.fences, { idProperty: o.idProperty, baseDir: ctx.baseDir });
  const events = new Set<GeofenceEvent>(o.events ?? ["enter", "exit"]);
  const wantEnter = events.has("enter"), wantExit = events.has("exit"), wantInside = events.has("inside");
  const wantOutside = events.has("outside"), wantCross = events.has("cross");
  const trackOf = o.trackId === undefined ? undefined : compilePath(o.trackId);
  const ownsState = o.state === undefined || typeof o.state === "string" || "sqlite" in o.state;
  const state: GeofenceState = o.state === undefined || o.state === "memory"
    ? memoryGeofenceState()
    : "sqlite" in o.state
      ? sqliteGeofenceState(resolve(ctx.baseDir ?? process.cwd(), o.state.sqlite))
      : o.state;
  const ids = index.fences.map((f) => f.id);
  // One shared array per fence: most points are in at most one fence, so this spares an allocation and
  // lets "same fences as before" be an identity check.
  const single = ids.map((id) => [id]);

  /** Sorted ids of the fences a geometry is in. */
  const fencesOf = (g: Geometry): string[] => {
    if (g.type === "Point") {
      const n = index.queryPoint(g.coordinates[0]!, g.coordinates[1]!);
      if (n === 0) return NONE;
      if (n === 1) return single[index.hits[0]!]!;
      const out: string[] = [];
      for (let k = 0; k < n; k++) out.push(ids[index.hits[k]!]!);
      return out.sort();
    }
    const m = index.matching(g, "intersects");
    return m.length === 0 ? NONE : m.map((i) => ids[i]!).sort();
  };

  return {
    name,
    process(batch: Message[]): StageOutput | Promise<StageOutput> {
      const dead: DeadLetter[] = [];
      const msgs: Message[] = [];
      const geoms: Geometry[] = [];
      // null: the value is a bare Feature (the common case, spared an allocation); else where locate found it.
      const locs: Array<Located | null> = [];
      // Tracks get a slot each per batch, so the hot loop indexes arrays instead of maps.
      const slotOf = new Map<string, number>();
      const unique: string[] = [];
      const slots: number[] = [];
      for (const message of batch) {
        const v = message.value as { type?: unknown; geometry?: unknown } | null;
        let geometry: Geometry;
        let loc: Located | null = null;
        if (v !== null && typeof v === "object" && v.type === "Feature" && isValidPoint(v.geometry)) geometry = v.geometry;
        else {
          const r = locate(v);
          if (!r.ok) {
            dead.push({ message, reason: problemReason(name, r.problem) });
            continue;
          }
          geometry = r.geometry;
          loc = r;
        }
        const t = trackOf === undefined ? message.key : trackOf(message.value);
        if (typeof t !== "string" && typeof t !== "number") {
          const where = o.trackId === undefined ? "the message key" : `value.${o.trackId}`;
          dead.push({ message, reason: `[geowatch] [spatial] ${name}: no track id (string or number) at ${where}` });
          continue;
        }
        const track = typeof t === "string" ? t : String(t);
        let slot = slotOf.get(track);
        if (slot === undefined) {
          slot = unique.length;
          slotOf.set(track, slot);
          unique.push(track);
        }
        msgs.push(message);
        geoms.push(geometry);
        locs.push(loc);
        slots.push(slot);
      }

      const pass: Message[] = [];
      const finish = (): StageOutput => (dead.length > 0 ? { pass, dead } : { pass });
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

      const compute = (prior: ReadonlyArray<TrackState | undefined>): StageOutput | Promise<StageOutput> => {
        const current = prior.slice();
        const changed = new Uint8Array(unique.length);
        let nChanged = 0;
        for (let k = 0; k < msgs.length; k++) {
          const msg = msgs[k]!, loc = locs[k] ?? null, geometry = geoms[k]!, slot = slots[k]!;
          const track = unique[slot]!;
          const prev = current[slot];
          const before = prev?.fences ?? NONE;
          const inNow = fencesOf(geometry);
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
            current[slot] = { fences: inNow, x: pos?.[0] ?? NaN, y: pos?.[1] ?? NaN };
            if (changed[slot] === 0) {
              changed[slot] = 1;
              nChanged++;
            }
          }
        }
        if (nChanged === 0) return finish();
        const entries: Array<readonly [string, TrackState]> = [];
        for (let s = 0; s < unique.length; s++) if (changed[s] === 1) entries.push([unique[s]!, current[s]!]);
        const wrote = state.set(entries);
        return isPromise(wrote) ? wrote.then(finish) : finish();
      };

      if (msgs.length === 0) return finish();
      const got = state.get(unique);
      return isPromise(got) ? got.then(compute) : compute(got);
    },
    async close() {
      if (ownsState) await state.close?.();
    },
  };
}
