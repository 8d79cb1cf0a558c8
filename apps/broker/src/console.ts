import type { Producer } from "@geowatch/core";
import { defineBackend, payloadText } from "@geowatch/core";
import { z } from "zod";

const consoleSchema = z.strictObject({
  stream: z.enum(["stdout", "stderr"]).optional().meta({ default: "stdout" }).describe("Where lines go."),
  prefix: z.string().optional().meta({ default: "" }).describe("Text put before each line."),
});

/** Options of `consoleProducer`. */
export type ConsoleOptions = z.input<typeof consoleSchema>;

/** Prints each record as one line; a producer for trying configs out and for the quickstart. */
export function consoleProducer(options: ConsoleOptions = {}): Producer {
  const out = options.stream === "stderr" ? process.stderr : process.stdout;
  const prefix = options.prefix ?? "";
  return {
    capabilities: { batching: true },
    async send(records) {
      const text = records.map((r) => prefix + payloadText(r.value).replace(/\n/g, "\\n") + "\n").join("");
      if (!out.write(text)) await new Promise((r) => out.once("drain", r));
      return records.map(() => ({ ok: true as const }));
    },
  };
}

export const consoleBackend = defineBackend({
  name: "console",
  description: "prints each record as one line (trying configs out, the quickstart)",
  producer: { options: consoleSchema, create: (o) => consoleProducer(o) },
});
