/** `routeByFence`: sets `message.routes` from the fence a message is in (its `metadata.fence`, or tested). */
import type { DeadLetter, Message, Stage, StageOutput } from "@geowatch/core";
import { resolveFences } from "./fence-index.js";
import type { FenceIndex } from "./fence-index.js";
import { locate, problemReason } from "./message.js";
import { parseOptions, routeByFenceSchema } from "./options.js";
import type { RouteByFenceOptions, SpatialStageContext } from "./options.js";

function fenceOfMetadata(message: Message): { found: boolean; fence: unknown } {
  const v = message.value as { metadata?: Record<string, unknown> } | null;
  const meta = message.metadata ?? (v !== null && typeof v === "object" ? v.metadata : undefined);
  if (typeof meta === "object" && meta !== null && "fence" in meta) return { found: true, fence: meta.fence };
  return { found: false, fence: undefined };
}

/**
 * Routes each message to the sinks listed for its fences: `routes[id]`, else `routes["*"]` for a fence not
 * listed; `routes.none` when it is in no fence. A message with no applicable entry keeps its routes.
 */
export function routeByFence(options: RouteByFenceOptions, ctx: SpatialStageContext = {}): Stage {
  const o = parseOptions<RouteByFenceOptions>(routeByFenceSchema, options, "routeByFence");
  const name = ctx.name ?? "routeByFence";
  const index: FenceIndex | undefined = o.fences === undefined ? undefined : resolveFences(o.fences, { idProperty: o.idProperty, baseDir: ctx.baseDir });
  const routes = new Map(Object.entries(o.routes));
  return {
    name,
    process(batch: Message[]): StageOutput {
      const pass: Message[] = [];
      const dead: DeadLetter[] = [];
      for (const message of batch) {
        let fences: string[];
        const meta = fenceOfMetadata(message);
        if (meta.found || index === undefined) {
          fences = typeof meta.fence === "string" || typeof meta.fence === "number" ? [String(meta.fence)] : [];
        } else {
          const r = locate(message.value);
          if (!r.ok) {
            dead.push({ message, reason: problemReason(name, r.problem) });
            continue;
          }
          fences = index.matching(r.geometry, "intersects").map((i) => index.fences[i]!.id);
        }
        const sinks = new Set<string>();
        let applies = false;
        for (const f of fences) {
          const list = routes.get(f) ?? routes.get("*");
          if (list) {
            applies = true;
            for (const s of list) sinks.add(s);
          }
        }
        if (fences.length === 0 && routes.has("none")) {
          applies = true;
          for (const s of routes.get("none")!) sinks.add(s);
        }
        pass.push(applies ? { ...message, routes: [...sinks] } : message);
      }
      return dead.length > 0 ? { pass, dead } : { pass };
    },
  };
}
