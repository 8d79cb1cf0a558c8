import type { Codec, Payload } from "../types.js";
import { encodeError, kindOf, payloadText, splitLines } from "./text.js";

const NAME = "plain";

/**
 * Text as it is. Bytes are decoded as UTF-8 and invalid sequences are a DECODE error. A store body
 * holds one value per line, so values packed together must not contain line breaks.
 */
export const plainCodec: Codec<string> = {
  name: NAME,
  contentType: "text/plain; charset=utf-8",
  appendable: true,
  encode(value: string): Payload {
    if (typeof value !== "string") throw encodeError(NAME, `expected a string, got ${kindOf(value)}`);
    return value;
  },
  decode(payload: Payload): string {
    return payloadText(payload, NAME);
  },
  pack(values: string[]): Payload {
    let out = "";
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (typeof value !== "string") throw encodeError(NAME, `value ${i}: expected a string, got ${kindOf(value)}`);
      // A line break would split the value in two on unpack.
      if (/[\r\n]/.test(value)) throw encodeError(NAME, `value ${i}: contains a line break, which a packed body cannot hold`);
      out += value + "\n";
    }
    return out;
  },
  unpack(payload: Payload): string[] {
    return splitLines(payloadText(payload, NAME));
  },
};
