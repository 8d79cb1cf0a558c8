import type { Codec, Payload } from "../types.js";
import { decodeError, kindOf, parseJson, payloadText, stringifyJson } from "./text.js";

const NAME = "json";

/**
 * One JSON value per message. A store body is a JSON array of the values, so it stays a JSON
 * document (and is therefore not appendable).
 */
export const jsonCodec: Codec<unknown> = {
  name: NAME,
  contentType: "application/json",
  appendable: false,
  jsonText: true,
  encode(value: unknown): Payload {
    return stringifyJson(value, NAME);
  },
  decode(payload: Payload): unknown {
    return parseJson(payloadText(payload, NAME), NAME);
  },
  pack(values: unknown[]): Payload {
    return stringifyJson(values, NAME);
  },
  unpack(payload: Payload): unknown[] {
    const text = payloadText(payload, NAME);
    if (text.trim() === "") return [];
    const value = parseJson(text, NAME);
    if (!Array.isArray(value)) throw decodeError(NAME, `a packed body must be a JSON array, got ${kindOf(value)}`);
    return value;
  },
};
