import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test, vi } from "vitest";
import { memoryChannel } from "../src/backends/memory.js";
import { Broker } from "../src/broker.js";
import { getCodec, jsonCodec } from "../src/codecs/index.js";
import { templateCodec } from "../src/codecs/template.js";
import { compileTemplate, escapeTemplateText } from "../src/codecs/template-engine.js";
import { GeoWatchError } from "../src/errors.js";
import type { OutRecord, Producer } from "../src/types.js";

// A pass-through spy, so tests can count how often the codec compiles.
vi.mock("../src/codecs/template-engine.js", async (importOriginal) => {
  const mod = await importOriginal<typeof import("../src/codecs/template-engine.js")>();
  return { ...mod, compileTemplate: vi.fn(mod.compileTemplate) };
});

function caught(fn: () => unknown): GeoWatchError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GeoWatchError);
    return err as GeoWatchError;
  }
  throw new Error("expected an error");
}

const render = (source: string, context: unknown, escape?: "none" | "html" | "slack") =>
  compileTemplate(source, { name: "t", ...(escape ? { escape } : {}) }).render(context);

const envelope = (actiontype: string | undefined, targettype: string | undefined, data: unknown = {}) => ({
  metadata: { ...(actiontype ? { actiontype } : {}), ...(targettype ? { targettype } : {}) },
  data,
});

describe("template engine", () => {
  test("variables, dotted paths, array indexes and the current item", () => {
    const ctx = { a: { b: { c: "deep" } }, n: 3, ok: false, list: ["x", "y"], obj: { k: 1 } };
    expect(render("{{a.b.c}} {{ n }} {{ok}} {{list.1}} {{obj}}", ctx)).toBe('deep 3 false y {"k":1}');
    expect(render("{{#list}}[{{.}}]{{/list}}", ctx)).toBe("[x][y]");
    expect(render("no tags at all", {})).toBe("no tags at all");
  });

  test("sections: truthy objects, iteration, falsy, missing and empty arrays; outer names stay visible", () => {
    const ctx = {
      site: "HQ",
      user: { name: "ann" },
      items: [{ id: 1 }, { id: 2, note: "two" }],
      none: [],
      off: false,
      zero: 0,
    };
    expect(render("{{#user}}hi {{name}}{{/user}}", ctx)).toBe("hi ann");
    expect(render("{{#items}}{{id}}@{{site}}{{#note}}({{note}}){{/note}};{{/items}}", ctx)).toBe("1@HQ;2@HQ(two);");
    expect(render("{{#none}}x{{/none}}{{#off}}x{{/off}}{{#zero}}x{{/zero}}{{#absent.deep}}x{{/absent.deep}}", ctx)).toBe("");
    expect(render("{{^none}}a{{/none}}{{^off}}b{{/off}}{{^absent}}c{{/absent}}{{^items}}d{{/items}}{{^user}}e{{/user}}", ctx)).toBe("abc");
  });

  test("section and comment tags alone on a line take the line with them", () => {
    const source = "Alerts:\n{{! one per item }}\n{{#items}}\n  - {{.}}\n{{/items}}\n{{^items}}\n  none\n{{/items}}\nend";
    expect(render(source, { items: ["a", "b"] })).toBe("Alerts:\n  - a\n  - b\nend");
    expect(render(source, { items: [] })).toBe("Alerts:\n  none\nend");
    expect(render("a {{#x}}b{{/x}} c\n", { x: true })).toBe("a b c\n");
  });

  test("default applies to missing, null and empty values only", () => {
    const ctx = { name: "", nil: null, there: "yes", zero: 0 };
    expect(render('{{missing | default: "n/a"}}|{{name | default: "anon"}}|{{nil | default: \'-\'}}|{{there | default: "no"}}|{{zero | default: 5}}', ctx)).toBe(
      "n/a|anon|-|yes|0",
    );
    expect(render('{{missing.deep | upper | default: "a|b"}}', {})).toBe("a|b");
  });

  test("filters: upper, lower, round, json, date, length, coords", () => {
    const point = { type: "Point", coordinates: [-77.0365, 38.8977] };
    const ctx = {
      s: "Hello",
      x: 3.14159,
      big: "2.5",
      obj: { a: [1, "two"] },
      when: "2024-03-01T12:00:00+02:00",
      epoch: 0,
      list: [1, 2, 3],
      point,
      feature: { type: "Feature", geometry: point, properties: {} },
      bare: [10, 20],
    };
    expect(render("{{s | upper}} {{s | lower}} {{x | round:2}} {{x | round}} {{big | round:1}}", ctx)).toBe("HELLO hello 3.14 3 2.5");
    expect(render("{{obj | json}} {{s | json}}", ctx)).toBe('{"a":[1,"two"]} "Hello"');
    expect(render("{{when | date}} {{epoch | date}}", ctx)).toBe("2024-03-01T10:00:00.000Z 1970-01-01T00:00:00.000Z");
    expect(render("{{list | length}} {{s | length}}", ctx)).toBe("3 5");
    expect(render("{{point | coords}} / {{feature | coords:2}} / {{bare | coords}}", ctx)).toBe("38.8977, -77.0365 / 38.90, -77.04 / 20, 10");
  });

  test("a filter given the wrong kind of value is an error naming filter, field and position", () => {
    const err = caught(() => render("ok\n  {{s | round:2}}", { s: "abc" }));
    expect(err.code).toBe("ENCODE");
    expect(err.message).toBe('[geowatch] [template] template "t" line 2 column 3: filter "round" on "s" needs a number, got "abc"');
    expect(caught(() => render("{{p | coords}}", { p: { type: "LineString", coordinates: [] } })).message).toMatch(/filter "coords" on "p" needs a GeoJSON Point/);
    expect(caught(() => render("{{d | date}}", { d: "not a date" })).message).toMatch(/filter "date" on "d" needs a date/);
    expect(caught(() => render("{{n | length}}", { n: 4 })).message).toMatch(/filter "length" on "n" needs a string or an array, got 4/);
  });

  test("a missing or null field is an error naming the template, the field and its line/column", () => {
    const t = compileTemplate("Alert for {{data.name}}\nat {{data.where.city}}, {{data.when}}", { name: "alert.geofence" });
    const err = caught(() => t.render({ data: { name: "bus 12", where: {} } }));
    expect(err.code).toBe("ENCODE");
    expect(err.message).toBe('[geowatch] [template] template "alert.geofence" line 2 column 4: field "data.where.city" is missing');
    expect(err.path).toBe("alert.geofence:2:4");
    expect(caught(() => t.render({ data: { name: null } })).message).toMatch(/line 1 column 11: field "data.name" is null$/);
    // Inside a section, the field is still named as written.
    expect(caught(() => render("{{#items}}{{id}}{{/items}}", { items: [{ id: 1 }, {}] })).message).toMatch(/column 11: field "id" is missing/);
  });

  test("parse errors name the template and the position", () => {
    const parse = (source: string) => caught(() => compileTemplate(source, { name: "p" }));
    expect(parse("hi {{name").message).toBe('[geowatch] [template] template "p" line 1 column 4: tag is never closed (missing "}}")');
    expect(parse("a\n{{#x}}\nb").message).toBe('[geowatch] [template] template "p" line 2 column 1: section "x" is never closed (missing "{{/x}}")');
    expect(parse("{{#a}}\n  {{#b}}{{/a}}").message).toBe(
      '[geowatch] [template] template "p" line 2 column 9: closing tag "{{/a}}" does not match section "b" opened at line 2 column 3',
    );
    expect(parse("x {{/a}}").message).toBe('[geowatch] [template] template "p" line 1 column 3: closing tag "{{/a}}" has no open section');
    expect(parse("{{}}").message).toMatch(/line 1 column 1: empty tag/);
    expect(parse("{{a | shout}}").message).toMatch(/unknown filter "shout" \(known: upper, lower, round/);
    expect(parse("{{a | round:x}}").message).toMatch(/filter "round" argument must be a quoted string or a number/);
    expect(parse("{{a | upper:2}}").message).toMatch(/filter "upper" takes no argument/);
    expect(parse("{{a b}}").message).toMatch(/"a b" is not a field path/);
    expect(parse("{{a | default}}").message).toMatch(/filter "default" needs a value/);
    expect(parse("{{{a}}").message).toMatch(/column 1: tag is never closed \(missing "}}}"\)/);
    for (const source of ["{{a}", "{{#a}}{{/b}}", "{{a.}}"]) expect(parse(source).code).toBe("CONFIG");
  });

  test("prototype access is refused when compiling, and only own properties are read", () => {
    for (const source of ["{{__proto__.x}}", "{{constructor.name}}", "{{a.prototype}}", "{{#__proto__}}x{{/__proto__}}", "{{^constructor}}x{{/constructor}}"]) {
      const err = caught(() => compileTemplate(source, { name: "evil" }));
      expect(err.code).toBe("SECURITY");
      expect(err.message).toMatch(/template "evil" line 1 column 1: path segment "(__proto__|constructor|prototype)" in .* is not allowed/);
    }
    // Inherited members are not fields: not Object.prototype.toString, not Array.prototype.map.
    expect(caught(() => render("{{toString}}", {})).message).toMatch(/field "toString" is missing/);
    expect(caught(() => render("{{list.map}}", { list: [] })).message).toMatch(/field "list.map" is missing/);
    expect(render("{{#hasOwnProperty}}x{{/hasOwnProperty}}", {})).toBe("");
    // A JSON "__proto__" key is an own property, yet still unreachable; nothing leaks onto Object.prototype.
    const hostile = JSON.parse('{"__proto__": {"polluted": 1}, "ok": "fine"}') as unknown;
    expect(render("{{ok}}", hostile)).toBe("fine");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("html and slack escaping; triple braces and & are raw", () => {
    const ctx = { v: `<b>"Tom" & 'Jerry'</b>`, mention: "<!channel> hi" };
    expect(render("{{v}}", ctx)).toBe(ctx.v);
    expect(render("{{v}}", ctx, "html")).toBe("&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;");
    expect(render("{{v}}|{{mention}}", ctx, "slack")).toBe(`&lt;b&gt;"Tom" &amp; 'Jerry'&lt;/b&gt;|&lt;!channel&gt; hi`);
    expect(render("<{{{v}}}> {{& mention}}", ctx, "html")).toBe(`<${ctx.v}> <!channel> hi`);
    expect(escapeTemplateText("a&b", "none")).toBe("a&b");
  });

  test("compiled templates report the line offset they were given", () => {
    const err = caught(() => compileTemplate("ok\n{{x}}", { name: "b", line: 3 }).render({}));
    expect(err.message).toMatch(/template "b" line 4 column 1: field "x" is missing/);
  });
});

describe("template codec", () => {
  const templates = {
    "create.geofence": "entered {{data.zone}}",
    "create.*": "created {{metadata.targettype}}",
    "*.vehicle": "vehicle {{metadata.actiontype}}",
    default: "something happened",
  };

  test("selects by actiontype.targettype, then actiontype.*, then *.targettype, then default", () => {
    const codec = templateCodec({ templates });
    expect(codec.encode(envelope("create", "geofence", { zone: "Z1" }))).toBe("entered Z1");
    expect(codec.encode(envelope("create", "track"))).toBe("created track");
    expect(codec.encode(envelope("delete", "vehicle"))).toBe("vehicle delete");
    expect(codec.encode(envelope("delete", "track"))).toBe("something happened");
    expect(codec.encode(envelope(undefined, undefined))).toBe("something happened");
    expect(codec.encode("not an envelope")).toBe("something happened");
    expect(codec.select({ actiontype: "create", targettype: "geofence" })).toBe("create.geofence");
    expect(codec.select({ targettype: "vehicle" })).toBe("*.vehicle");
    expect(codec.name).toBe("template");
    expect(codec.contentType).toBe("text/plain; charset=utf-8");
  });

  test("no match and no default is an ENCODE error naming the types and every key tried", () => {
    const codec = templateCodec({ templates: { "create.geofence": "x" } });
    const err = caught(() => codec.encode(envelope("delete", "track")));
    expect(err.code).toBe("ENCODE");
    expect(err.message).toBe('[geowatch] [template] no template for actiontype "delete" targettype "track" (tried "delete.track", "delete.*", "*.track", "default")');
    expect(caught(() => codec.encode({ data: 1 })).message).toBe('[geowatch] [template] no template for actiontype (none) targettype (none) (tried "default")');
  });

  test("templates see metadata, data, value and (via render) key; decode returns the text", () => {
    const codec = templateCodec({ templates: { default: "{{metadata.actiontype}}/{{data.id}}/{{value.data.id}}/{{key | default: \"-\"}}" } });
    const msg = envelope("update", "track", { id: 7 });
    expect(codec.encode(msg)).toBe("update/7/7/-");
    expect(codec.render(msg, { key: "k1" })).toBe("update/7/7/k1");
    expect(codec.decode(new TextEncoder().encode("héllo"))).toBe("héllo");
    expect(codec.decode("plain")).toBe("plain");
  });

  test("a missing field names the chosen template", () => {
    const codec = templateCodec({ templates });
    const err = caught(() => codec.encode(envelope("create", "geofence", {})));
    expect(err.message).toBe('[geowatch] [template] template "create.geofence" line 1 column 9: field "data.zone" is missing');
  });

  test("email: the Subject line becomes the subject, the rest the text; errors keep body line numbers", () => {
    const codec = templateCodec({
      format: "email",
      templates: { default: "Subject: [{{metadata.actiontype | upper}}] {{data.name}}\n\nHello,\n{{data.name}} is at {{data.point | coords}}.\n{{data.extra}}" },
    });
    expect(codec.contentType).toBe("application/json");
    const ok = envelope("alert", "vehicle", { name: "bus\r\n12", point: { type: "Point", coordinates: [2.35, 48.85] }, extra: "bye" });
    expect(JSON.parse(codec.encode(ok) as string)).toEqual({ subject: "[ALERT] bus 12", text: "Hello,\nbus\r\n12 is at 48.85, 2.35.\nbye" });
    const err = caught(() => codec.encode(envelope("alert", "vehicle", { name: "x", point: [0, 0] })));
    expect(err.message).toMatch(/template "default" line 5 column 1: field "data.extra" is missing/);
    const noSubject = caught(() => templateCodec({ format: "email", templates: { default: "Hello" } }));
    expect(noSubject.code).toBe("CONFIG");
    expect(noSubject.message).toMatch(/template "default" line 1: an email template starts with a "Subject: \.\.\." line/);
  });

  test("slack: a JSON {text} with Slack escaping by default", () => {
    const codec = templateCodec({ format: "slack", templates: { default: "*{{data.who}}* entered <{{data.url}}|the zone>" } });
    expect(codec.contentType).toBe("application/json");
    const out = JSON.parse(codec.encode(envelope("a", "b", { who: "<!here> & co", url: "https://x.test/?a=1&b=2" })) as string);
    expect(out).toEqual({ text: "*&lt;!here&gt; &amp; co* entered <https://x.test/?a=1&amp;b=2|the zone>" });
    const raw = templateCodec({ format: "slack", escape: "none", templates: { default: "{{data.who}}" } });
    expect(JSON.parse(raw.encode(envelope("a", "b", { who: "<x>" })) as string)).toEqual({ text: "<x>" });
  });

  test("html escaping for text", () => {
    const codec = templateCodec({ escape: "html", templates: { default: "<p>{{data.note}}</p>" } });
    expect(codec.encode(envelope("a", "b", { note: "a<b & \"c\"" }))).toBe("<p>a&lt;b &amp; &quot;c&quot;</p>");
  });

  test("options: every problem with its path; every broken template at once", () => {
    const many = caught(() => templateCodec({ templates: { a: 1 }, escape: "xml", format: "sms", extra: true } as Record<string, unknown>));
    expect(many.code).toBe("CONFIG");
    expect(many.message).toMatch(/^\[geowatch\] \[template\] invalid codec options: /);
    for (const path of ["options.templates.a", "options.escape", "options.format", "options"]) expect(many.message).toContain(`${path}: `);
    expect(many.message).toMatch(/extra/);
    expect(caught(() => templateCodec({})).message).toContain("options.templates: give templates or templatesFile");
    expect(caught(() => templateCodec()).message).toContain("options.templates: give templates or templatesFile");
    expect(caught(() => templateCodec({ templates: {}, templatesFile: "/x" })).message).toContain("options.templatesFile: give templates or templatesFile, not both");
    expect(caught(() => templateCodec({ templates: {} })).message).toBe("[geowatch] [template] no templates given");
    const broken = caught(() => templateCodec({ templates: { "a.b": "{{#x}}", "c.d": "{{y", nodot: "z", "e.f": "{{constructor}}" } }));
    expect(broken.code).toBe("CONFIG");
    expect(broken.message).toBe(
      '[geowatch] [template] invalid templates: template "a.b" line 1 column 1: section "x" is never closed (missing "{{/x}}"); ' +
        'template "c.d" line 1 column 1: tag is never closed (missing "}}"); ' +
        'options.templates: key "nodot": a key is "<actiontype>.<targettype>" (either may be "*") or "default"; ' +
        'template "e.f" line 1 column 1: path segment "constructor" in "constructor" is not allowed (prototype access)',
    );
  });

  test("templatesFile: a JSON object of templates, or plain text as the default template", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-template-"));
    const json = join(dir, "t.json");
    writeFileSync(json, JSON.stringify({ "create.*": "made {{data.id}}", default: "other" }));
    const fromJson = templateCodec({ templatesFile: json });
    expect(fromJson.encode(envelope("create", "x", { id: 1 }))).toBe("made 1");
    expect(fromJson.encode(envelope("drop", "x"))).toBe("other");
    const txt = join(dir, "t.txt");
    writeFileSync(txt, "plain {{metadata.actiontype}}\n");
    expect(templateCodec({ templatesFile: txt }).encode(envelope("go", "x"))).toBe("plain go\n");
    const bad = join(dir, "bad.json");
    writeFileSync(bad, '{"a.b": 1}');
    expect(caught(() => templateCodec({ templatesFile: bad })).message).toMatch(/must be a JSON object of template strings \(not a string: "a\.b"\)/);
    writeFileSync(bad, '{"a.b": ');
    expect(caught(() => templateCodec({ templatesFile: bad })).message).toMatch(/is not valid JSON/);
    expect(caught(() => templateCodec({ templatesFile: join(dir, "absent.json") })).message).toMatch(/options\.templatesFile: cannot read/);
  });

  test("config round trip through getCodec", () => {
    const config = {
      codec: { name: "template", options: { format: "email", templates: { "alert.*": "Subject: {{metadata.actiontype}} on {{metadata.targettype}}\nbody {{data}}" } } },
    };
    const codec = getCodec(config.codec.name, config.codec.options);
    expect(codec.name).toBe("template");
    const encoded = codec.encode(envelope("alert", "zone", "inside"));
    expect(JSON.parse(encoded as string)).toEqual({ subject: "alert on zone", text: "body inside" });
    expect(codec.decode(encoded)).toBe(encoded);
    const err = caught(() => getCodec("template", { templates: { default: "{{x" } }));
    expect(err.code).toBe("CONFIG");
    expect(err.message).toMatch(/template "default" line 1 column 1: tag is never closed/);
    expect(caught(() => getCodec("template")).message).toContain("give templates or templatesFile");
  });

  test("compiles each template once, however often it renders", () => {
    const compile = vi.mocked(compileTemplate);
    compile.mockClear();
    const codec = templateCodec({ templates: { "create.*": "{{data.n}} {{data.name | upper}}", default: "d", "*.x": "{{#data.l}}{{.}}{{/data.l}}" } });
    expect(compile).toHaveBeenCalledTimes(3);
    let last = "";
    for (let i = 0; i < 100_000; i++) last = codec.encode(envelope(i % 2 ? "create" : "other", "x", { n: i, name: "a", l: [1] })) as string;
    expect(last).toBe("99999 A");
    expect(compile).toHaveBeenCalledTimes(3);
  });
});

describe("template codec in a broker", () => {
  test("renders one text per message, chosen by actiontype, and dead-letters what has no template", async () => {
    const src = memoryChannel();
    await src.producer().send(
      [
        envelope("entry", "geofence", { vehicle: "bus 12", zone: "Depot", point: { type: "Point", coordinates: [-0.1276, 51.5072] } }),
        envelope("exit", "geofence", { vehicle: "bus 12", zone: "Depot" }),
        envelope("speeding", "vehicle", { vehicle: "van 3", speed: 97.456 }),
        envelope("unknown", "thing", {}),
      ].map((v) => ({ value: JSON.stringify(v) })),
    );
    const got: OutRecord[] = [];
    const out: Producer = { send: async (rs) => rs.map((r) => (got.push(r), { ok: true as const })) };
    const dead: OutRecord[] = [];
    const dlq: Producer = { send: async (rs) => rs.map((r) => (dead.push(r), { ok: true as const })) };
    const codec = getCodec("template", {
      templates: {
        "entry.geofence": "{{data.vehicle}} entered {{data.zone}} at {{data.point | coords:3}}",
        "exit.*": "{{data.vehicle}} left {{data.zone}}",
        "*.vehicle": "{{data.vehicle}}: {{metadata.actiontype}} at {{data.speed | round:1}} km/h",
      },
    });
    const broker = new Broker({
      name: "notify",
      consumers: [{ name: "in", consumer: src.consumer(), codec: jsonCodec }],
      producers: [{ name: "slack", producer: out, codec }],
      deadLetter: { name: "dlq", producer: dlq },
    });
    const stats = await broker.run({ untilIdle: true });
    expect(got.map((r) => r.value)).toEqual([
      "bus 12 entered Depot at 51.507, -0.128",
      "bus 12 left Depot",
      "van 3: speeding at 97.5 km/h",
    ]);
    expect(got.every((r) => r.contentType === "text/plain; charset=utf-8")).toBe(true);
    expect(got[0]!.metadata).toEqual({ actiontype: "entry", targettype: "geofence" });
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]!.value as string).reason).toMatch(/no template for actiontype "unknown" targettype "thing"/);
    expect(stats.deadLettered).toBe(1);
    expect(src.size + src.inFlight).toBe(0);
  });
});
