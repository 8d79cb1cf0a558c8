/**
 * One definition per backend and per stage, from one option schema per role: it gives validation (with
 * the node's role), the TypeScript option types (`z.input`/`z.output` of the schema), the docs that
 * `geowatch backends` prints, and the backend's part of the config JSON Schema.
 */
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { formatPath, issueMessage } from "./config.js";
import type { OptionProblem } from "./options.js";
import type { BackendContext, Codec, Consumer, Producer, Stage, Store } from "./types.js";

/** A zod (v4) object schema: a backend's or stage's options, keys in camelCase. */
export type OptionsSchema = z.ZodObject;

/** How a node uses its backend: the role, and whether it is the broker's dead-letter sink. */
export interface NodeUse {
  role: "consumer" | "producer" | "store";
  /** The producer is the dead-letter sink: its records are dead letters (JSON, no envelope metadata). */
  deadLetter?: boolean;
}

/**
 * One role of a backend. Describe each option in the schema: `.describe("...")` for the text,
 * `.default(v)` (applied) or `.meta({ default: v })` (documented, applied by the backend), `.meta({ env: "VAR" })`
 * for an environment fallback, `.meta({ path: true })` for a file path that resolves against the config
 * file's folder, `.meta({ secret: true })` for a value never to print.
 */
export interface RoleSpec<S extends OptionsSchema, R> {
  options: S;
  create(options: z.output<S>, ctx: BackendContext): R;
  /** Rules the schema cannot say (exactly one of two options); each problem with its camelCase path. */
  check?(options: z.output<S>, use: NodeUse): OptionProblem[];
}

export interface BackendSpec<C extends OptionsSchema = OptionsSchema, P extends OptionsSchema = OptionsSchema, S extends OptionsSchema = OptionsSchema> {
  /** Name in config (`backend: kafka`); a package provides it as `@geowatch/<name>` or by its full name. */
  name: string;
  /** One line: what it connects to. */
  description: string;
  consumer?: RoleSpec<C, Consumer>;
  producer?: RoleSpec<P, Producer>;
  store?: RoleSpec<S, Store>;
}

/** One documented option, derived from the schema. */
export interface OptionDoc {
  /** As config spells it (snake_case). */
  name: string;
  type: string;
  description: string;
  required: boolean;
  default?: unknown;
  env?: string;
}

/** Options parsed for a role, or every problem with its path (snake_case, as config spells it). */
export type ParsedOptions = { ok: true; options: Record<string, unknown> } | { ok: false; problems: OptionProblem[] };

/** A role as the runtime uses it. */
export interface RoleDefinition<R> {
  readonly schema: OptionsSchema;
  /** Converts config keys (snake_case, at option level only), resolves paths, validates with the role's rules. */
  parse(raw: Record<string, unknown>, use: NodeUse, opts?: { baseDir?: string }): ParsedOptions;
  create(options: Record<string, unknown>, ctx: BackendContext): R;
  docs(): OptionDoc[];
  /** JSON Schema of the options, keys as config spells them. */
  jsonSchema(): Record<string, unknown>;
}

export interface BackendDefinition {
  readonly kind: "geowatch-backend";
  readonly name: string;
  readonly description: string;
  readonly consumer?: RoleDefinition<Consumer>;
  readonly producer?: RoleDefinition<Producer>;
  readonly store?: RoleDefinition<Store>;
}

export interface StageSpec<S extends OptionsSchema> {
  /** Name in config, snake_case (`stage: route_by_fence`). */
  name: string;
  description: string;
  options: S;
  create(options: z.output<S>, ctx: BackendContext): Stage | Promise<Stage>;
  check?(options: z.output<S>): OptionProblem[];
}

export interface StageDefinition {
  readonly kind: "geowatch-stage";
  readonly name: string;
  readonly description: string;
  readonly schema: OptionsSchema;
  parse(raw: Record<string, unknown>, opts?: { baseDir?: string }): ParsedOptions;
  create(options: Record<string, unknown>, ctx: BackendContext): Stage | Promise<Stage>;
  docs(): OptionDoc[];
  jsonSchema(): Record<string, unknown>;
}

export interface CodecSpec<S extends OptionsSchema> {
  /** Name in config (`codec: gml`); a package declares it in package.json `"geowatch": { "codecs": ["gml"] }`. */
  name: string;
  description: string;
  /** Its options (`codec: { name: gml, options: {...} }`), keys in camelCase; none when omitted. */
  options?: S;
  create(options: z.output<S>): Codec;
  check?(options: z.output<S>): OptionProblem[];
}

export interface CodecDefinition {
  readonly kind: "geowatch-codec";
  readonly name: string;
  readonly description: string;
  readonly schema: OptionsSchema;
  parse(raw: Record<string, unknown>, opts?: { baseDir?: string }): ParsedOptions;
  create(options: Record<string, unknown>): Codec;
  docs(): OptionDoc[];
  jsonSchema(): Record<string, unknown>;
}

/** Defines a codec that a package provides (the built-in ones are in core's codec registry). */
export function defineCodec<S extends OptionsSchema>(spec: CodecSpec<S>): CodecDefinition {
  const schema = (spec.options ?? z.strictObject({})) as OptionsSchema;
  const checkFn = spec.check;
  return Object.freeze({
    kind: "geowatch-codec" as const,
    name: spec.name,
    description: spec.description,
    schema,
    parse: (raw: Record<string, unknown>, opts: { baseDir?: string } = {}) =>
      parseWith(schema, raw, opts.baseDir, checkFn ? (o) => checkFn(o as z.output<S>) : undefined),
    create: (options: Record<string, unknown>) => spec.create(options as z.output<S>),
    docs: () => optionDocs(schema),
    jsonSchema: () => optionsJsonSchema(schema),
  });
}

export function isCodecDefinition(v: unknown): v is CodecDefinition {
  return v !== null && typeof v === "object" && (v as { kind?: unknown }).kind === "geowatch-codec";
}

/** Defines a backend from one option schema per role. */
export function defineBackend<C extends OptionsSchema, P extends OptionsSchema, S extends OptionsSchema>(spec: BackendSpec<C, P, S>): BackendDefinition {
  const def: { -readonly [K in keyof BackendDefinition]: BackendDefinition[K] } = { kind: "geowatch-backend", name: spec.name, description: spec.description };
  if (spec.consumer) def.consumer = role(spec.consumer);
  if (spec.producer) def.producer = role(spec.producer);
  if (spec.store) def.store = role(spec.store);
  return Object.freeze(def);
}

/** Defines a stage from its option schema. */
export function defineStage<S extends OptionsSchema>(spec: StageSpec<S>): StageDefinition {
  const checkFn = spec.check;
  return Object.freeze({
    kind: "geowatch-stage" as const,
    name: spec.name,
    description: spec.description,
    schema: spec.options,
    parse: (raw: Record<string, unknown>, opts: { baseDir?: string } = {}) =>
      parseWith(spec.options, raw, opts.baseDir, checkFn ? (o) => checkFn(o as z.output<S>) : undefined),
    create: (options: Record<string, unknown>, ctx: BackendContext) => spec.create(options as z.output<S>, ctx),
    docs: () => optionDocs(spec.options),
    jsonSchema: () => optionsJsonSchema(spec.options),
  });
}

export function isBackendDefinition(v: unknown): v is BackendDefinition {
  return v !== null && typeof v === "object" && (v as { kind?: unknown }).kind === "geowatch-backend";
}

export function isStageDefinition(v: unknown): v is StageDefinition {
  return v !== null && typeof v === "object" && (v as { kind?: unknown }).kind === "geowatch-stage";
}

function role<S extends OptionsSchema, R>(spec: RoleSpec<S, R>): RoleDefinition<R> {
  const checkFn = spec.check;
  return {
    schema: spec.options,
    parse: (raw, use, opts = {}) => parseWith(spec.options, raw, opts.baseDir, checkFn ? (o) => checkFn(o as z.output<S>, use) : undefined),
    create: (options, ctx) => spec.create(options as z.output<S>, ctx),
    docs: () => optionDocs(spec.options),
    jsonSchema: () => optionsJsonSchema(spec.options),
  };
}

// ---- schema walking (zod v4 internals: `_zod.def`) ----

interface Def {
  type: string;
  innerType?: z.ZodType;
  options?: z.ZodType[];
  element?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  defaultValue?: unknown;
  catchall?: z.ZodType;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The schema under optional/nullable/default/pipe wrappers. */
function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  for (let i = 0; i < 20; i++) {
    const d = defOf(cur);
    if ((d.type === "optional" || d.type === "nullable" || d.type === "default" || d.type === "prefault" || d.type === "readonly") && d.innerType) cur = d.innerType;
    else if (d.type === "pipe" && d.in) cur = d.in;
    else return cur;
  }
  return cur;
}

function metaOf(s: z.ZodType): Record<string, unknown> {
  let cur: z.ZodType | undefined = s;
  const out: Record<string, unknown> = {};
  // Metadata may sit on the wrapper (`.optional().meta()`) or inside it (`.meta().optional()`).
  for (let i = 0; cur && i < 20; i++) {
    const m = (cur as unknown as { meta?: () => Record<string, unknown> | undefined }).meta?.();
    if (m) for (const [k, v] of Object.entries(m)) if (!(k in out)) out[k] = v;
    const d = defOf(cur);
    cur = d.innerType ?? (d.type === "pipe" ? d.in : undefined);
  }
  return out;
}

const objectShape = (s: z.ZodType): Record<string, z.ZodType> | undefined => {
  const u = unwrap(s);
  return defOf(u).type === "object" ? (u as z.ZodObject).shape : undefined;
};

export const toCamel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
export const toSnake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Renames config keys to the schema's camelCase keys, only where the schema has an object of options:
 * values (fence names, inline GeoJSON, headers) keep their keys as written. Relative `path` options
 * resolve against `baseDir`.
 */
function configToOptions(value: unknown, schema: z.ZodType, baseDir: string | undefined): unknown {
  if (typeof value === "string") {
    const relative = value !== "" && !isAbsolute(value) && !value.includes("://") && value !== ":memory:";
    return baseDir !== undefined && relative && metaOf(schema).path === true ? resolve(baseDir, value) : value;
  }
  const u = unwrap(schema);
  const d = defOf(u);
  if (d.type === "union" && d.options) {
    const obj = d.options.find((o) => defOf(unwrap(o)).type === "object");
    if (obj && isPlainObject(value)) return configToOptions(value, obj, baseDir);
    return value;
  }
  if (d.type === "array" && d.element && Array.isArray(value)) return value.map((v) => configToOptions(v, d.element!, baseDir));
  if (d.type !== "object" || !isPlainObject(value)) return value;
  const shape = (u as z.ZodObject).shape;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const key = k in shape ? k : toCamel(k) in shape ? toCamel(k) : k;
    const field = shape[key];
    Object.defineProperty(out, key, { value: field ? configToOptions(v, field, baseDir) : v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The option names known at a (camelCase) path of a schema, for "unknown option (known: ...)". */
export function knownOptionsAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  return Object.keys(objectShape(schemaAt(schema, path) ?? schema) ?? {});
}

/** The object schema at a (camelCase) path, for listing the options known there. */
function schemaAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): z.ZodType | undefined {
  let cur: z.ZodType | undefined = schema;
  for (const p of path) {
    if (!cur) return undefined;
    const d = defOf(unwrap(cur));
    if (d.type === "object") cur = (unwrap(cur) as z.ZodObject).shape[String(p)];
    else if (d.type === "array") cur = d.element;
    else if (d.type === "union") cur = d.options?.map((o) => (defOf(unwrap(o)).type === "object" ? (unwrap(o) as z.ZodObject).shape[String(p)] : undefined)).find(Boolean);
    else return undefined;
  }
  return cur;
}

const snakePath = (path: ReadonlyArray<PropertyKey>) => formatPath(path.map((p) => (typeof p === "string" ? toSnake(p) : p)));

function parseWith(schema: OptionsSchema, raw: Record<string, unknown>, baseDir: string | undefined, check: ((o: Record<string, unknown>) => OptionProblem[]) | undefined): ParsedOptions {
  const input = configToOptions(raw, schema, baseDir);
  const res = schema.safeParse(input);
  if (!res.success) {
    const problems = res.error.issues.flatMap((issue): OptionProblem[] => {
      if (issue.code === "unrecognized_keys") {
        const shape = objectShape(schemaAt(schema, issue.path) ?? schema) ?? {};
        const known = Object.keys(shape).map(toSnake).join(", ") || "none";
        return issue.keys.map((k) => ({ path: snakePath([...issue.path, k]), message: `unknown option (known: ${known})` }));
      }
      return [{ path: snakePath(issue.path), message: issueMessage(issue) }];
    });
    // Role rules too, so one pass lists every problem; they see the input as far as it goes.
    if (check) for (const p of safeCheck(check, input as Record<string, unknown>)) problems.push({ ...p, path: snakePath(p.path.split(".")) });
    return { ok: false, problems };
  }
  const options = res.data as Record<string, unknown>;
  const extra = check ? safeCheck(check, options) : [];
  if (extra.length > 0) return { ok: false, problems: extra.map((p) => ({ ...p, path: snakePath(p.path.split(".")) })) };
  return { ok: true, options };
}

function safeCheck(check: (o: Record<string, unknown>) => OptionProblem[], options: Record<string, unknown>): OptionProblem[] {
  try {
    return check(options);
  } catch (err) {
    return [{ path: "", message: `could not be checked: ${err instanceof Error ? err.message : String(err)}` }];
  }
}

function optionDocs(schema: OptionsSchema): OptionDoc[] {
  return Object.entries(schema.shape).map(([key, field]) => {
    const meta = metaOf(field);
    const d = defOf(field);
    const doc: OptionDoc = {
      name: toSnake(key),
      type: typeText(fieldJsonSchema(field)),
      description: (field as z.ZodType).description ?? String(meta.description ?? ""),
      required: !(field as z.ZodType).safeParse(undefined).success,
    };
    const dflt = d.type === "default" ? d.defaultValue : meta.default;
    if (dflt !== undefined) doc.default = dflt;
    if (typeof meta.env === "string") doc.env = meta.env;
    return doc;
  });
}

function fieldJsonSchema(field: z.ZodType): Record<string, unknown> {
  try {
    return z.toJSONSchema(field, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** A short type for docs: `string`, `integer`, `"a" | "b"`, `string[]`, `{ mechanism, username? }`. */
function typeText(js: Record<string, unknown>, depth = 0): string {
  if (Array.isArray(js.enum)) return js.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (js.const !== undefined) return JSON.stringify(js.const);
  const alts = (js.anyOf ?? js.oneOf) as Array<Record<string, unknown>> | undefined;
  if (alts) return alts.map((a) => typeText(a, depth)).join(" | ");
  if (js.type === "array") return `${typeText((js.items as Record<string, unknown>) ?? {}, depth)}[]`;
  if (js.type === "object" && js.properties && depth < 1) {
    const req = new Set((js.required as string[] | undefined) ?? []);
    return `{ ${Object.keys(js.properties as object).map((k) => `${toSnake(k)}${req.has(k) ? "" : "?"}`).join(", ")} }`;
  }
  if (typeof js.type === "string") return js.type;
  return "any";
}

/** The options' JSON Schema with property names as config spells them. */
function optionsJsonSchema(schema: OptionsSchema): Record<string, unknown> {
  const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" }) as Record<string, unknown>;
  delete js.$schema;
  return snakeProperties(js) as Record<string, unknown>;
}

function snakeProperties(js: unknown): unknown {
  if (Array.isArray(js)) return js.map(snakeProperties);
  if (js === null || typeof js !== "object") return js;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(js)) {
    if (k === "properties" && v && typeof v === "object") {
      const props: Record<string, unknown> = {};
      for (const [pk, pv] of Object.entries(v)) props[toSnake(pk)] = snakeProperties(pv);
      out[k] = props;
    } else if (k === "required" && Array.isArray(v)) {
      out[k] = v.map((r) => (typeof r === "string" ? toSnake(r) : r));
    } else {
      out[k] = snakeProperties(v);
    }
  }
  return out;
}
