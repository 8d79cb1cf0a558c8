/** The `subscriptions` stage: one event in, one message per subscribed recipient out, routed to its channel's sink. */
import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { BackendContext, DeadLetter, Message, Metadata, Stage, StageOutput } from "@geowatch/core";
import { createFenceIndex, loadFences, locate } from "@geowatch/spatial";
import type { Fence, FenceIndex, Geometry } from "@geowatch/spatial";
import type { SubscriptionsStageOptions } from "./options.js";
import { openSubscriptionStore } from "./store.js";
import type { Subscription, SubscriptionStore } from "./store.js";

const str = (v: unknown) => (typeof v === "string" ? v : undefined);

function metadataOf(m: Message): Metadata | undefined {
  if (m.metadata) return m.metadata;
  const v = m.value as { metadata?: unknown } | null;
  return v !== null && typeof v === "object" && typeof v.metadata === "object" && v.metadata !== null ? (v.metadata as Metadata) : undefined;
}

/** The event's footprint: `metadata.bbox` as a polygon, else the envelope's GeoJSON data; none when it has neither. */
export function footprint(m: Message, meta: Metadata): Geometry | undefined {
  const b = meta.bbox;
  if (Array.isArray(b) && b.length === 4 && b.every((n) => typeof n === "number" && Number.isFinite(n))) {
    const [x0, y0, x1, y1] = b as number[];
    if (x0! === x1! && y0! === y1!) return { type: "Point", coordinates: [x0!, y0!] };
    return { type: "Polygon", coordinates: [[[x0!, y0!], [x1!, y0!], [x1!, y1!], [x0!, y1!], [x0!, y0!]]] };
  }
  const v = m.value as { data?: unknown } | null;
  if (v === null || typeof v !== "object" || v.data === null || v.data === undefined) return undefined;
  const r = locate(v);
  return r.ok ? r.geometry : undefined;
}

const listed = (list: string[], v: string | undefined) => list.length === 0 || (v !== undefined && list.includes(v));

/** The subscriptions a loaded set holds, with an index over their areas. */
class Matcher {
  private readonly index: FenceIndex | undefined;
  constructor(
    readonly subs: Subscription[],
    named: Map<string, Fence>,
  ) {
    const areas: Fence[] = [];
    const used = new Set<string>();
    for (const s of subs) {
      if (!s.area) continue;
      if ("fence" in s.area) {
        const f = named.get(s.area.fence);
        if (f && !used.has(`fence:${f.id}`)) {
          used.add(`fence:${f.id}`);
          areas.push({ ...f, id: `fence:${f.id}` });
        }
      } else areas.push({ id: `sub:${s.id}`, geometry: s.area.polygon as Fence["geometry"], properties: {} });
    }
    this.index = areas.length > 0 ? createFenceIndex(areas) : undefined;
  }

  match(meta: Metadata, where: () => Geometry | undefined): Subscription[] {
    let inside: Set<string> | undefined;
    const areaIds = () => {
      if (inside) return inside;
      const g = this.index ? where() : undefined;
      inside = new Set(g && this.index ? this.index.matching(g, "intersects").map((i) => this.index!.fences[i]!.id) : []);
      return inside;
    };
    return this.subs.filter((s) => {
      if (!listed(s.actiontypes, str(meta.actiontype)) || !listed(s.targettypes, str(meta.targettype)) || !listed(s.featuretypes, str(meta.featuretype))) return false;
      if (!s.area) return true;
      return areaIds().has("fence" in s.area ? `fence:${s.area.fence}` : `sub:${s.id}`);
    });
  }
}

/** Builds the stage; the database opens in `open()`. */
export function subscriptionsStage(o: SubscriptionsStageOptions, ctx: Pick<BackendContext, "name" | "logger"> & { baseDir?: string }): Stage {
  const name = ctx.name || "subscriptions";
  const routes = new Map(Object.entries(o.routes ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));
  let store: SubscriptionStore | undefined;
  let named = new Map<string, Fence>();
  let matcher: Matcher | undefined;
  let version = "";

  function current(): Matcher {
    if (!store) throw new GeoWatchError("CLOSED", `stage "${name}" is not open`, { backend: "subscriptions" });
    const v = store.version();
    if (!matcher || v !== version) {
      const subs = store.list();
      for (const s of subs) {
        if (s.area && "fence" in s.area && !named.has(s.area.fence)) {
          ctx.logger.warn("subscription names an unknown fence: it matches nothing", { stage: name, subscription: s.id, fence: s.area.fence });
        }
      }
      matcher = new Matcher(subs, named);
      version = v;
    }
    return matcher;
  }

  return {
    name,
    async open() {
      if (o.fences !== undefined) named = new Map(loadFences(o.fences, { idProperty: o.idProperty ?? "id", baseDir: ctx.baseDir }).map((f) => [f.id, f]));
      store = openSubscriptionStore(o.db);
      current();
    },
    process(batch: Message[]): StageOutput {
      const m = current();
      const pass: Message[] = [];
      const dead: DeadLetter[] = [];
      for (const message of batch) {
        const meta = metadataOf(message);
        if (!meta || (str(meta.actiontype) === undefined && str(meta.targettype) === undefined)) {
          dead.push({ message, reason: `[geowatch] [subscriptions] ${name}: not an event: the message has no envelope metadata with actiontype or targettype` });
          continue;
        }
        let matched: Subscription[];
        try {
          matched = m.match(meta, () => footprint(message, meta));
        } catch (err) {
          dead.push({ message, reason: `[geowatch] [subscriptions] ${name}: ${reasonOf(err)}` });
          continue;
        }
        // One message per recipient and channel, however many of their subscriptions match.
        const seen = new Set<string>();
        for (const s of matched) {
          const k = `${s.channel}\u0000${s.address}`;
          if (seen.has(k)) continue;
          seen.add(k);
          const metadata: Metadata = { ...meta, recipient: s.address, channel: s.channel, subscriber: s.user, subscription: s.id };
          const v = message.value as Record<string, unknown>;
          const value = v !== null && typeof v === "object" && "metadata" in v ? { ...v, metadata } : message.value;
          const to = routes.get(s.channel) ?? (o.routes ? undefined : [s.channel]);
          // With `routes` given, a channel it does not list has no sink: say so instead of routing to nothing.
          if (to === undefined) dead.push({ message: { ...message, value, metadata }, reason: `[geowatch] [subscriptions] ${name}: subscription ${s.id} (${s.user}) uses channel "${s.channel}", which routes does not list (it lists ${[...routes.keys()].join(", ")})` });
          else pass.push({ ...message, value, metadata, routes: to });
        }
      }
      return dead.length > 0 ? { pass, dead } : { pass };
    },
    async close() {
      store?.close();
      store = undefined;
    },
  };
}
