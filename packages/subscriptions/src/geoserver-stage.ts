/** The `geoserver_events` stage: GeoServer notifications in, GeoWatch envelopes out, anything else dead-lettered. */
import { reasonOf } from "@geowatch/core";
import type { DeadLetter, Message, Stage, StageOutput } from "@geowatch/core";
import { geoserverMapping } from "./geoserver.js";
import type { GeoserverEventsStageOptions } from "./options.js";

export function geoserverEventsStage(o: GeoserverEventsStageOptions, ctx: { name?: string } = {}): Stage {
  const name = ctx.name || "geoserver_events";
  const drop = o.onUnknown === "drop";
  return {
    name,
    process(batch: Message[]): StageOutput {
      const pass: Message[] = [];
      const dead: DeadLetter[] = [];
      for (const message of batch) {
        try {
          const m = geoserverMapping.toMessage(message.value instanceof Uint8Array ? new TextDecoder().decode(message.value) : message.value);
          pass.push({ ...message, value: m.value, metadata: m.value.metadata });
        } catch (err) {
          if (!drop) dead.push({ message, reason: `[geowatch] [geoserver] ${name}: ${reasonOf(err).replace(/^\[geowatch\] \[geoserver\] /, "")}` });
        }
      }
      return dead.length > 0 ? { pass, dead } : { pass };
    },
  };
}
