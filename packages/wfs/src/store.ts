/**
 * The wfs store: a flush is a batch of feature edits for the layer named by the key (or `type_name`),
 * applied like the producer's (one Transaction, idempotent by `id_property`); `read` returns the layer as
 * a GeoJSON FeatureCollection for `stores_in`. A layer is edited, never replaced: `append` and snapshot
 * writes both apply the edits they carry.
 */
import { GeoWatchError, guardStore, payloadText, reasonOf, type ManagedStore, type Payload, type Store, type StoreWrite } from "@geowatch/core";
import { BACKEND, type SecretReader } from "./http.js";
import type { WfsStoreOptions } from "./options.js";
import { editsOf, editWriter, type Edit } from "./producer.js";
import { readStore } from "./reader.js";

/** The values of a store body: a JSON array (the json codec), one JSON value, or NDJSON lines (the ndjson codec). */
function valuesOf(body: string): unknown[] {
  const text = body.trim();
  if (text === "") return [];
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v : [v];
  } catch {
    return text
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l, i) => {
        try {
          return JSON.parse(l) as unknown;
        } catch (err) {
          throw new GeoWatchError("DECODE", `store body line ${i + 1} is not JSON: ${reasonOf(err)}`, { backend: BACKEND });
        }
      });
  }
}

export function createWfsStore(o: WfsStoreOptions, deps: { secret?: SecretReader } = {}): Store {
  const writer = editWriter(o, deps.secret);
  const readOptions = {
    url: o.url,
    ...(o.protocol !== undefined ? { protocol: o.protocol } : {}),
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.passwordFile !== undefined ? { passwordFile: o.passwordFile } : {}),
    ...(o.token !== undefined ? { token: o.token } : {}),
    ...(o.tokenFile !== undefined ? { tokenFile: o.tokenFile } : {}),
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.maxResponseBytes !== undefined ? { maxResponseBytes: o.maxResponseBytes } : {}),
    ...(o.allowPrivate !== undefined ? { allowPrivate: o.allowPrivate } : {}),
    ...(o.allowHosts !== undefined ? { allowHosts: o.allowHosts } : {}),
    ...(o.version !== undefined ? { version: o.version } : {}),
    ...(o.typeName !== undefined ? { typeName: o.typeName } : {}),
  };
  return {
    capabilities: { append: true, read: true },
    async write(op: StoreWrite): Promise<void> {
      const typeName = op.key !== "" ? op.key : o.typeName;
      const edits: Edit[] = [];
      for (const value of valuesOf(payloadText(op.body))) for (const e of editsOf(value, { typeName, defaultAction: o.defaultAction })) edits.push(e);
      if (edits.length === 0) return;
      const max = o.maxBatch ?? 200;
      for (let from = 0; from < edits.length; from += max) {
        const results = await writer.apply(edits.slice(from, from + max));
        const bad = results.map((r, i) => ({ r, i: from + i })).filter((x) => !x.r.ok);
        if (bad.length > 0) {
          const first = bad[0]!;
          const reason = first.r.ok ? "" : reasonOf(first.r.error);
          // Edits are idempotent by id_property, so the store sink may retry the whole write.
          throw new GeoWatchError("STORE", `${bad.length} of ${edits.length} edits to "${typeName}" failed; edit ${first.i}: ${reason}`, {
            backend: BACKEND,
            retryable: bad.some((x) => !x.r.ok && x.r.retryable),
          });
        }
      }
    },
    async read(key: string): Promise<Payload | undefined> {
      return readStore(readOptions, key !== "" ? key : undefined, deps.secret);
    },
  };
}

/** A WFS-T / OGC API Features store, guarded by the runtime layer. */
export function wfsStore(o: WfsStoreOptions, deps: { secret?: SecretReader } = {}): ManagedStore {
  return guardStore(createWfsStore(o, deps), { name: "wfs", backend: BACKEND });
}
