import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { isGeoWatchError, jsonLogger, reasonOf, silentLogger } from "@geowatch/core";
import { loadCheckedConfig } from "./config.js";
import type { RegistryConfig } from "./config.js";
import { dcRecordsIn, recordFromDc, recordFromIso } from "./csw/records.js";
import { dcRecord, isoRecord, CSW_NS_ATTRS, NS } from "./csw/output.js";
import { parseXml, arr, child } from "./harvest/xml.js";
import type { XmlNode } from "./harvest/xml.js";
import { buildServer } from "./http/server.js";
import { Registry } from "./registry.js";
import { hypermapDoc, parseSearchParams } from "./search.js";
import { SERVICE_TYPES } from "./storage/types.js";
import type { LayerInput, ServiceType } from "./storage/types.js";

const HELP = `geowatch-registry: harvest OGC and Esri map services, check their uptime, serve search, CSW 2.0.2 and a map UI

Usage: geowatch-registry <command> [options]

Commands:
  serve                 HTTP server (Search API /api/search, CSW /csw, UI /) with in-process workers and the scheduler
  worker                take harvest and check jobs from the job channel (run as many as you like)
  add URL...            register services (type guessed, or --type) and queue their harvest (--now: harvest here)
  harvest [ID...]       harvest services now (all when no ID), with progress
  check [ID...]         check services and their layers now (all monitored when no ID)
  services              list services with their harvest state and reliability
  search [TEXT]         search layers (--geo "[minLat,minLon TO maxLat,maxLon]", --time "[2013 TO *]", --limit N, --json)
  import FILE...        import CSW records (csw:Record, gmd:MD_Metadata, or a GetRecordsResponse) into the catalogue
  export                write every record as a csw:GetRecordsResponse (--schema dc|iso, --out FILE)

Options:
  -c, --config FILE     YAML or JSON config (snake_case keys; see README). Env: GEOWATCH_REGISTRY_CONFIG
      --db PATH         SQLite database (storage.path)          --pg URL   PostgreSQL + PostGIS (storage.url)
      --allow-private   allow private and loopback service URLs (url_policy.allow_private)
      --port N          serve: HTTP port                         --workers N  serve: in-process workers (0: none)
      --no-scheduler    serve/worker: do not emit periodic jobs  --until-idle  worker: stop when no job is left
      --type TYPE       add: one of ${SERVICE_TYPES.join(", ")}
      --owner NAME      add: the owner recorded on its layers    --now  add: harvest at once
      --quiet           no progress on stderr
  -h, --help            this help                                -v, --version

Exit codes: 0 done, 1 a harvest, check or command failed, 2 usage or config error.`;

const OPTIONS = {
  config: { type: "string", short: "c" },
  db: { type: "string" },
  pg: { type: "string" },
  "allow-private": { type: "boolean" },
  port: { type: "string" },
  workers: { type: "string" },
  "no-scheduler": { type: "boolean" },
  "until-idle": { type: "boolean" },
  type: { type: "string" },
  owner: { type: "string" },
  now: { type: "boolean" },
  geo: { type: "string" },
  time: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean" },
  schema: { type: "string" },
  out: { type: "string" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

class UsageError extends Error {}

async function configFrom(values: Record<string, unknown>): Promise<RegistryConfig> {
  const c = await loadCheckedConfig((values.config as string | undefined) ?? process.env.GEOWATCH_REGISTRY_CONFIG);
  if (values.db) c.storage = { engine: "sqlite", path: String(values.db) };
  if (values.pg) c.storage = { engine: "postgres", path: c.storage.path, url: String(values.pg) };
  if (values["allow-private"]) c.urlPolicy.allowPrivate = true;
  if (values.port !== undefined) c.http.port = intOpt(values.port, "--port");
  if (values.workers !== undefined) c.jobs.workers = intOpt(values.workers, "--workers");
  return c;
}

function intOpt(v: unknown, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a non-negative integer`);
  return n;
}

function ids(args: string[]): number[] {
  return args.map((a) => {
    const n = Number(a);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`"${a}" is not a service id`);
    return n;
  });
}

/** Records of an XML document: csw:Record elements, gmd:MD_Metadata, or those inside a GetRecords(ById)Response. */
export function recordsFromXml(xml: string, source: string): LayerInput[] {
  const doc = parseXml(xml, source);
  const containers: XmlNode[] = [doc];
  const resp = child(doc, "GetRecordsResponse", "SearchResults") ?? child(doc, "GetRecordByIdResponse");
  if (resp) containers.push(resp);
  const out: LayerInput[] = [];
  for (const c of containers) {
    for (const r of dcRecordsIn(c)) {
      const rec = recordFromDc(r, "");
      if (rec) out.push(rec);
    }
    for (const m of arr<XmlNode>(c.MD_Metadata)) {
      const rec = recordFromIso(m, "");
      if (rec) out.push(rec);
    }
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`geowatch-registry: ${(err as Error).message}\n(see geowatch-registry --help)\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const [cmd, ...args] = positionals;
  if (values.help || !cmd) {
    process.stdout.write(`${HELP}\n`);
    return values.help ? 0 : 2;
  }
  const quiet = values.quiet === true;
  const progress = (msg: string) => {
    if (!quiet) process.stderr.write(`${msg}\n`);
  };
  let registry: Registry | undefined;
  try {
    const config = await configFrom(values);
    registry = await new Registry(config, { logger: quiet ? silentLogger : jsonLogger() }).init();
    switch (cmd) {
      case "serve":
        return await serve(registry, values["no-scheduler"] !== true);
      case "worker": {
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        const scheduler = values["no-scheduler"] || values["until-idle"] ? undefined : registry.schedule(ac.signal);
        const counts = await registry.work({ signal: ac.signal, untilIdle: values["until-idle"] === true });
        ac.abort();
        await scheduler;
        progress(`worker: ${counts.jobs} jobs, ${counts.updates} index updates`);
        return 0;
      }
      case "add": {
        if (!args.length) throw new UsageError("add needs at least one URL");
        if (values.type && !SERVICE_TYPES.includes(values.type as ServiceType)) throw new UsageError(`--type must be one of ${SERVICE_TYPES.join(", ")}`);
        let failed = 0;
        for (const url of args) {
          const services = await registry.add(url, { ...(values.type ? { type: values.type as ServiceType } : {}), ...(values.owner ? { owner: values.owner } : {}), enqueue: !values.now });
          for (const s of services) {
            process.stdout.write(`${s.id}\t${s.type}\t${s.url}\n`);
            if (values.now) failed += (await harvestOne(registry, s.id, progress)) ? 0 : 1;
          }
        }
        return failed ? 1 : 0;
      }
      case "harvest": {
        const list = args.length ? ids(args) : (await registry.storage.listServices()).map((s) => s.id);
        let failed = 0;
        let i = 0;
        for (const id of list) {
          progress(`[${++i}/${list.length}] harvesting service ${id}`);
          failed += (await harvestOne(registry, id, progress)) ? 0 : 1;
        }
        return failed ? 1 : 0;
      }
      case "check": {
        const list = args.length ? ids(args) : (await registry.storage.listServices()).filter((s) => s.monitored).map((s) => s.id);
        let failed = 0;
        let i = 0;
        for (const id of list) {
          const u = await registry.checkUpdate(id);
          await registry.apply(u);
          if (u.kind !== "checks") continue;
          const bad = u.checks.filter((c) => !c.ok);
          failed += bad.length ? 1 : 0;
          progress(`[${++i}/${list.length}] service ${id}: ${u.checks.length - bad.length}/${u.checks.length} checks ok${bad.length ? `; first failure: ${bad[0]!.message}` : ""}`);
        }
        return failed ? 1 : 0;
      }
      case "services": {
        for (const s of await registry.storage.listServices()) {
          const state = s.harvestOk === null ? "not harvested" : s.harvestOk ? `${s.layerCount} layers` : `harvest failed: ${s.harvestError}`;
          process.stdout.write(`${s.id}\t${s.type}\t${s.url}\t${state}\treliability ${s.reliability ?? "-"}%\t${s.monitored ? "" : "unmonitored"}\n`);
        }
        return 0;
      }
      case "search": {
        const params: Record<string, string> = { "d.docs.limit": values.limit ?? "10" };
        if (args.length) params["q.text"] = args.join(" ");
        if (values.geo) params["q.geo"] = values.geo;
        if (values.time) params["q.time"] = values.time;
        const { query } = parseSearchParams(params);
        const r = await registry.storage.search(query);
        if (values.json) process.stdout.write(`${JSON.stringify({ "a.matchDocs": r.total, "d.docs": r.docs.map((d) => hypermapDoc(d)) }, null, 2)}\n`);
        else {
          process.stdout.write(`${r.total} layers\n`);
          for (const d of r.docs) process.stdout.write(`${d.id}\t${d.type}\t${d.title}\treliability ${d.reliability ?? "-"}%\n`);
        }
        return 0;
      }
      case "import": {
        if (!args.length) throw new UsageError("import needs at least one file");
        let total = 0;
        for (const f of args) {
          const recs = recordsFromXml(readFileSync(f, "utf8"), f);
          total += await registry.storage.upsertRecords(recs);
          progress(`${f}: ${recs.length} records`);
        }
        process.stdout.write(`imported ${total} records\n`);
        return 0;
      }
      case "export": {
        const schema = values.schema ?? "dc";
        if (schema !== "dc" && schema !== "iso") throw new UsageError("--schema must be dc or iso");
        const r = await registry.storage.search({ limit: 1_000_000, offset: 0, sort: "title", sortDir: "asc" });
        const body = r.docs.map((l) => (schema === "iso" ? isoRecord(l, "full") : dcRecord(l, "full"))).join("\n");
        const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<csw:GetRecordsResponse ${CSW_NS_ATTRS} xmlns:gmd="${NS.gmd}" version="2.0.2"><csw:SearchStatus timestamp="${new Date().toISOString()}"/><csw:SearchResults numberOfRecordsMatched="${r.total}" numberOfRecordsReturned="${r.docs.length}" elementSet="full" nextRecord="0" recordSchema="${schema === "iso" ? NS.gmd : NS.csw}">\n${body}\n</csw:SearchResults></csw:GetRecordsResponse>\n`;
        if (values.out) {
          writeFileSync(values.out, xml);
          progress(`exported ${r.docs.length} records to ${values.out}`);
        } else process.stdout.write(xml);
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`geowatch-registry: ${err.message}\n(see geowatch-registry --help)\n`);
      return 2;
    }
    process.stderr.write(`geowatch-registry: ${reasonOf(err)}\n`);
    return isGeoWatchError(err, "CONFIG") ? 2 : 1;
  } finally {
    await registry?.close();
  }
}

async function harvestOne(registry: Registry, id: number, progress: (m: string) => void): Promise<boolean> {
  let last = 0;
  const u = await registry.harvestUpdate(id, (done, total) => {
    if (Date.now() - last > 500) {
      last = Date.now();
      progress(`  service ${id}: ${done}${total ? `/${total}` : ""} records`);
    }
  });
  await registry.apply(u);
  if (u.kind === "harvest" && u.ok) {
    progress(`  service ${id}: ${u.layers.length} layers`);
    return true;
  }
  progress(`  service ${id}: harvest failed: ${u.kind === "harvest" && !u.ok ? u.error : ""}`);
  return false;
}

async function serve(registry: Registry, scheduler: boolean): Promise<number> {
  const app = await buildServer(registry);
  const ac = new AbortController();
  const address = await app.listen({ host: registry.config.http.host, port: registry.config.http.port });
  process.stderr.write(`geowatch-registry: listening on ${address} (search ${address}/api/search, CSW ${address}/csw, UI ${address}/)\n`);
  const loops: Promise<unknown>[] = [];
  for (let i = 0; i < registry.config.jobs.workers; i++) loops.push(registry.work({ signal: ac.signal, indexer: i === 0 }));
  // With no in-process worker, something must still apply index updates written by remote workers.
  if (registry.config.jobs.workers === 0) loops.push(registry.work({ signal: ac.signal, jobs: false }));
  if (scheduler) loops.push(registry.schedule(ac.signal));
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  ac.abort();
  await app.close();
  await Promise.allSettled(loops);
  return 0;
}
