import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const BIN = new URL("../bin/geowatch.js", import.meta.url).pathname;
const validate = (file: string) =>
  spawnSync(process.execPath, [BIN, "validate", file], { encoding: "utf8", env: { ...process.env, GEOWATCH_LOG_LEVEL: "warn" }, timeout: 60_000 });

// A broker that validates cleanly on its own, so the only problem in each file is the one under test.
const BROKER = "brokers:\n  - name: b\n    consumers: [{backend: memory, topic: in}]\n    producers: [{backend: memory, topic: out}]\n";

// Nine levels of nine-fold aliases: a few hundred bytes that expand to 9^9 strings.
const BILLION_LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ..."bcdefghi".split("").map((c, i) => {
    const prev = "abcdefghi"[i]!;
    return `${c}: &${c} [${Array(9).fill(`*${prev}`).join(",")}]`;
  }),
  BROKER,
].join("\n");

describe("geowatch validate: files that cannot be a config exit 2 with a message", () => {
  const dir = mkdtempSync(join(tmpdir(), "geowatch-load-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const expectConfigError = (path: string, message: RegExp) => {
    const r = validate(path);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`${path} has`);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/TypeError|ReferenceError|Cannot read properties/);
    expect(r.status).toBe(2);
  };

  it("a clean config passes, and a few aliases are fine", () => {
    const r = validate(file("ok.yaml", BROKER.replace("name: b", "name: &n b\n    description: *n")));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("an empty file", () => {
    expectConfigError(file("empty.yaml", ""), /\(root\): the file is empty/);
    expectConfigError(file("empty.json", ""), /\(root\): the file is empty/);
  });

  it("a whitespace-only file and a comments-only file", () => {
    expectConfigError(file("blank.yaml", "  \n\n\t\n"), /\(root\): the file is empty/);
    expectConfigError(file("comments.yaml", "# nothing here\n# yet\n"), /\(root\): the file holds no config/);
  });

  it("a YAML alias bomb (billion laughs)", () => {
    expectConfigError(file("bomb.yaml", BILLION_LAUGHS), /\(root\): YAML aliases expand too far \(limit 100\).*billion laughs/);
  });

  it("a top-level list or scalar", () => {
    expectConfigError(file("list.yaml", "- name: b\n- name: c\n"), /\(root\): the file must hold a mapping \(key: value pairs\) at the top, not a list/);
    expectConfigError(file("list.json", '[{"name": "b"}]'), /not a list/);
    expectConfigError(file("scalar.yaml", "just some text\n"), /at the top, not a string \("just some text"\)/);
  });

  it("__proto__, constructor and prototype keys in YAML, with their paths", () => {
    const yaml = `__proto__: {enabled: false}\n${BROKER}    options:\n      constructor: x\n    filter_metadata:\n      actiontype:\n        - {prototype: 1}\n`;
    const path = file("proto.yaml", yaml);
    expectConfigError(path, /^ {2}- __proto__: key "__proto__" is not allowed/m);
    const r = validate(path);
    expect(r.stderr).toMatch(/- brokers\[0\]\.options\.constructor: key "constructor" is not allowed/);
    expect(r.stderr).toMatch(/- brokers\[0\]\.filter_metadata\.actiontype\[0\]\.prototype: key "prototype" is not allowed/);
  });

  it("a __proto__ key in JSON, at the top and in a broker", () => {
    const json = JSON.stringify({ brokers: [{ name: "b", consumers: [{ backend: "memory", topic: "in" }], producers: [{ backend: "memory", topic: "out" }] }] });
    expectConfigError(file("proto.json", `{"__proto__": {"enabled": false}, ${json.slice(1)}`), /- __proto__: key "__proto__" is not allowed/);
    // The case that used to pass silently: the broker's prototype said enabled: false, so nothing ran.
    const inBroker = json.replace('{"name":"b"', '{"name":"b","__proto__":{"enabled":false}');
    expectConfigError(file("proto-broker.json", inBroker), /- brokers\[0\]\.__proto__: key "__proto__" is not allowed/);
  });
});
