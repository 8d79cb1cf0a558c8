import type { Codec, Store } from "./types.js";
import { selectWhich, unpackWith, type Which } from "./store-sink.js";
import { GeoWatchError } from "./errors.js";

export interface StoreInNode {
  name: string;
  store: Store;
  codec?: Codec;
  key: string;
  which?: Which;
  whichIndex?: number;
  /** Read again this often, in ms; default: read once per run. */
  pollMs?: number;
  backend?: string;
}

/** Reads a store key and unpacks it into values, keeping those `which` selects. */
export async function readStoreIn(node: StoreInNode): Promise<unknown[]> {
  if (!node.store.read) {
    throw new GeoWatchError("UNSUPPORTED", `store "${node.name}" cannot be read (no read capability)`, { backend: node.backend });
  }
  const body = await node.store.read(node.key);
  if (body === undefined) return [];
  return selectWhich(unpackWith(node.codec, body), node.which, node.whichIndex);
}
