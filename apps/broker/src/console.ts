import type { BackendDefinition, Producer } from "@geowatch/core";
import { payloadText } from "@geowatch/core";

export interface ConsoleOptions {
  /** `stdout` (default) or `stderr`. */
  stream?: "stdout" | "stderr";
  /** Text put before each line. Default "". */
  prefix?: string;
}

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

export const consoleBackend: BackendDefinition = {
  name: "console",
  producer: (o) => consoleProducer(o as ConsoleOptions),
  options: {
    stream: { type: '"stdout" | "stderr"', description: "Where lines go.", default: "stdout" },
    prefix: { type: "string", description: "Text before each line.", default: "" },
  },
  validate: (o) => {
    const issues = [];
    for (const k of Object.keys(o)) if (k !== "stream" && k !== "prefix") issues.push({ path: k, message: `unknown option "${k}" (known: stream, prefix)` });
    if (o.stream !== undefined && o.stream !== "stdout" && o.stream !== "stderr") issues.push({ path: "stream", message: 'must be "stdout" or "stderr"' });
    return issues;
  },
};
