import { describe, expect, it } from "vitest";
import { type ConfigIssue, checkForbiddenKeys, interpolate } from "../src/config.js";
import { templateCodec } from "../src/codecs/template.js";
import { compileTemplate } from "../src/codecs/template-engine.js";
import { GeoWatchError } from "../src/errors.js";
import { Runtime } from "../src/runtime.js";
import { checkKeyTemplate, renderKey } from "../src/template.js";

// JSON.parse and the YAML loader both keep "__proto__" as an own key: this is what a hostile file looks like.
const hostile = (json: string): unknown => JSON.parse(json) as unknown;

const NESTED = `{
  "__proto__": {"enabled": false},
  "defaults": {"kafka": {"constructor": {"x": 1}}},
  "brokers": [
    {"name": "b", "consumers": [{"backend": "memory", "topic": "t", "options": {"prototype": 1}}],
     "filter_metadata": {"actiontype": [{"__proto__": {"polluted": true}}]}}
  ]
}`;
const NESTED_PATHS = ["__proto__", "defaults.kafka.constructor", "brokers[0].consumers[0].options.prototype", "brokers[0].filter_metadata.actiontype[0].__proto__"];

function caught(fn: () => unknown): GeoWatchError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GeoWatchError);
    return err as GeoWatchError;
  }
  throw new Error("expected an error");
}

const protoSnapshot = () => Object.getOwnPropertyNames(Object.prototype).sort();

describe("forbidden config keys", () => {
  it("checkForbiddenKeys reports __proto__, constructor and prototype at every depth with their paths", () => {
    const issues: ConfigIssue[] = [];
    expect(checkForbiddenKeys(hostile(NESTED), issues)).toBe(4);
    expect(issues.map((i) => i.path)).toEqual(NESTED_PATHS);
    for (const i of issues) expect(i.message).toMatch(/^key "(__proto__|constructor|prototype)" is not allowed/);
  });

  it("checkForbiddenKeys terminates on shared and cyclic values and accepts clean configs", () => {
    const shared: Record<string, unknown> = { a: 1 };
    shared.self = shared;
    const issues: ConfigIssue[] = [];
    expect(checkForbiddenKeys({ x: shared, y: [shared, shared], proto: "__proto__ as a value is fine" }, issues)).toBe(0);
    expect(issues).toEqual([]);
  });

  it("interpolate reports the same keys and builds objects with their own prototype untouched", () => {
    const before = protoSnapshot();
    const issues: ConfigIssue[] = [];
    const out = interpolate(hostile(NESTED), {}, () => "", issues) as Record<string, unknown> & { brokers: Array<Record<string, unknown>> };
    expect(issues.map((i) => i.path)).toEqual(NESTED_PATHS);
    // `out.__proto__ = {enabled: false}` used to become the prototype: enabled read as false, broker silently off.
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect("enabled" in out).toBe(false);
    const filter = (out.brokers[0]!.filter_metadata as { actiontype: object[] }).actiontype[0]!;
    expect(Object.getPrototypeOf(filter)).toBe(Object.prototype);
    expect((filter as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.keys(out).sort()).toEqual(["brokers", "defaults"]);
    expect(protoSnapshot()).toEqual(before);
    expect(({} as { polluted?: unknown; enabled?: unknown }).polluted).toBeUndefined();
  });

  it("interpolate reads only own environment variables", () => {
    const issues: ConfigIssue[] = [];
    const out = interpolate({ a: "${constructor}", b: "${toString:-fallback}" }, {}, () => "", issues);
    expect(out).toEqual({ a: "${constructor}", b: "fallback" });
    expect(issues).toEqual([{ path: "a", message: "environment variable constructor is not set" }]);
  });

  it("the runtime refuses a __proto__ key instead of letting it disable a broker", async () => {
    const before = protoSnapshot();
    const rt = new Runtime({ env: {} });
    const config = hostile(`{"brokers": [{"name": "b", "__proto__": {"enabled": false},
      "consumers": [{"backend": "memory", "topic": "safety-in"}], "producers": [{"backend": "memory", "topic": "safety-out"}]}]}`);
    const issues = await rt.validate(config);
    expect(issues).toContainEqual(expect.objectContaining({ path: "brokers[0].__proto__", message: expect.stringMatching(/key "__proto__" is not allowed/) }));
    expect(protoSnapshot()).toEqual(before);
  });
});

describe("store key templates (renderKey)", () => {
  const ctx = { actiontype: "create", nested: { id: 7 }, list: ["a"] };

  it("own fields render as before", () => {
    expect(renderKey("{actiontype}/{nested.id}.json", ctx)).toBe("create/7.json");
  });

  it("{constructor}, {__proto__} and {a.prototype} are refused, naming the field", () => {
    for (const [template, field] of [["{constructor}.json", "constructor"], ["{__proto__}.json", "__proto__"], ["{nested.prototype}", "nested.prototype"], ["{nested.constructor.name}", "nested.constructor.name"]] as const) {
      const err = caught(() => renderKey(template, ctx, "store key"));
      expect(err.code).toBe("SECURITY");
      expect(err.message).toContain(`field "${field}"`);
      expect(err.message).toMatch(/not allowed \(prototype access\)/);
      expect(err.message).not.toMatch(/function|native code/);
    }
  });

  it("inherited members are missing fields: {toString}, {hasOwnProperty}, {list.map}", () => {
    for (const [template, field] of [["{toString}", "toString"], ["{hasOwnProperty}.json", "hasOwnProperty"], ["{list.map}", "list.map"], ["{nested.valueOf}", "nested.valueOf"]] as const) {
      const err = caught(() => renderKey(template, ctx, "store key"));
      expect(err.code).toBe("VALIDATE");
      expect(err.message).toContain(`needs field "${field}", which the message does not have`);
    }
  });

  it("a JSON __proto__ key in a message is never rendered", () => {
    const message = hostile('{"__proto__": {"x": "evil"}, "ok": "fine"}') as Record<string, unknown>;
    expect(renderKey("{ok}", message)).toBe("fine");
    expect(caught(() => renderKey("{__proto__.x}", message)).code).toBe("SECURITY");
  });

  it("checkKeyTemplate finds prototype placeholders before any message arrives", () => {
    expect(checkKeyTemplate("{actiontype}/{nested.id}.json")).toEqual([]);
    expect(checkKeyTemplate("{constructor}/{a.__proto__.b}")).toEqual([
      'placeholder "{constructor}" uses "constructor", which is not allowed (prototype access)',
      'placeholder "{a.__proto__.b}" uses "__proto__", which is not allowed (prototype access)',
    ]);
  });
});

describe("template codec", () => {
  it("refuses prototype paths when compiling, in the engine and the codec", () => {
    for (const source of ["{{constructor}}", "{{__proto__}}", "{{a.prototype}}"]) {
      expect(caught(() => compileTemplate(source, { name: "t" })).code).toBe("SECURITY");
      const err = caught(() => templateCodec({ templates: { default: source } }));
      expect(err.code).toBe("CONFIG");
      expect(err.message).toMatch(/path segment "(constructor|__proto__|prototype)" .* is not allowed \(prototype access\)/);
    }
  });

  it("renders inherited names as missing fields, never Object's members", () => {
    const codec = templateCodec({ templates: { default: "{{metadata.toString}}" } });
    const err = caught(() => codec.render({ metadata: { actiontype: "x" }, data: {} }));
    expect(err.code).toBe("ENCODE");
    expect(err.message).toMatch(/field "metadata.toString" is missing/);
    expect(templateCodec({ templates: { default: "{{#valueOf}}x{{/valueOf}}ok" } }).render({ metadata: {}, data: {} })).toBe("ok");
  });

  it("chooses templates by the envelope's own metadata only, not metadata inherited from a prototype", () => {
    const codec = templateCodec({ templates: { "create.*": "c", default: "d" } });
    const inherited = Object.create({ metadata: { actiontype: "create" } }) as Record<string, unknown>;
    inherited.data = {};
    expect(codec.select(undefined)).toBe("default");
    expect(codec.render(inherited)).toBe("d");
    expect(codec.render({ metadata: { actiontype: "create" }, data: {} })).toBe("c");
  });

  it("a message's own __proto__ key selects no template and pollutes nothing", () => {
    const before = protoSnapshot();
    const codec = templateCodec({ templates: { "create.*": "c {{data.ok}}", default: "d {{data.ok}}" } });
    const value = hostile('{"metadata": {"__proto__": {"actiontype": "create"}}, "data": {"ok": 1}}');
    expect(codec.render(value)).toBe("d 1");
    expect(protoSnapshot()).toEqual(before);
  });
});
