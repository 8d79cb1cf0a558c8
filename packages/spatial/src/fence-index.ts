/**
 * The fence index: a static packed R-tree (flatbush) over fence bounding boxes, and per fence its rings in one
 * flat Float64Array with the edges bucketed into horizontal bands, so a point-in-polygon test looks only at the
 * edges whose y-range holds the point (a country outline with thousands of vertices costs a few dozen edge tests).
 *
 * A MultiPolygon is the union of its parts: a point inside two overlapping parts is inside. Crossings are counted
 * per part "colour": parts whose boxes overlap get different colours (greedy), parts of one colour cannot both
 * hold a point, so even-odd per colour is exact and a fence whose parts never overlap keeps the one-counter loop.
 */
import Flatbush from "flatbush";
import { GeoWatchError } from "@geowatch/core";
import type { Logger } from "@geowatch/core";
import { loadFences, splitAntimeridian } from "./fences.js";
import type { Fence, LoadFencesOptions } from "./fences.js";
import type { Geometry, Position } from "./geojson.js";
import { geometryBBox } from "./geojson.js";

/** Average edges per band the bucketing aims for. */
const EDGES_PER_BAND = 4;
const MAX_BANDS = 4096;

export type Predicate = "intersects" | "within";

function orient(ax: number, ay: number, bx: number, by: number, cx: number, cy: number): number {
  return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
}

function onSegment(ax: number, ay: number, bx: number, by: number, px: number, py: number): boolean {
  return Math.min(ax, bx) <= px && px <= Math.max(ax, bx) && Math.min(ay, by) <= py && py <= Math.max(ay, by);
}

/** Whether segments ab and cd meet; `proper` counts only crossings through both interiors. */
export function segmentsMeet(
  ax: number, ay: number, bx: number, by: number,
  cx: number, cy: number, dx: number, dy: number, proper: boolean,
): boolean {
  const d1 = orient(cx, cy, dx, dy, ax, ay);
  const d2 = orient(cx, cy, dx, dy, bx, by);
  const d3 = orient(ax, ay, bx, by, cx, cy);
  const d4 = orient(ax, ay, bx, by, dx, dy);
  if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) return true;
  if (proper) return false;
  return (d1 === 0 && onSegment(cx, cy, dx, dy, ax, ay)) || (d2 === 0 && onSegment(cx, cy, dx, dy, bx, by))
    || (d3 === 0 && onSegment(ax, ay, bx, by, cx, cy)) || (d4 === 0 && onSegment(ax, ay, bx, by, dx, dy));
}

/** Even-odd point-in-polygon over GeoJSON rings (for the non-indexed side of polygon predicates). */
export function pointInRings(rings: Position[][], x: number, y: number): boolean {
  let inside = false;
  for (const ring of rings) {
    for (let k = 0, j = ring.length - 1; k < ring.length; j = k++) {
      const xi = ring[k]![0]!, yi = ring[k]![1]!, xj = ring[j]![0]!, yj = ring[j]![1]!;
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

interface PointGrid {
  x0: number;
  y0: number;
  invW: number;
  invH: number;
  nx: number;
  ny: number;
  /** CSR layout: cell c lists items[start[c]] .. items[start[c + 1]]. */
  start: Uint32Array;
  items: Uint32Array;
}

/** An indexed, immutable set of fences. Build once with `createFenceIndex`; share between stages. */
export class FenceIndex {
  readonly fences: readonly Fence[];
  private readonly idToIndex = new Map<string, number>();
  private readonly tree: Flatbush | null;
  private readonly coords: Float64Array;
  private readonly bbox: Float64Array;
  private readonly bandMinY: Float64Array;
  private readonly bandInvH: Float64Array;
  private readonly bandCount: Uint32Array;
  private readonly bandOff: Uint32Array;
  private readonly bandStarts: Uint32Array;
  private readonly bandEdges: Uint32Array;
  private readonly ringStart: Uint32Array;
  private readonly ringEnd: Uint32Array;
  private readonly ringHole: Uint8Array;
  private readonly fenceRingFrom: Uint32Array;
  private readonly fenceRingTo: Uint32Array;
  /** Per fence, how many part colours it has (1: one even-odd counter is exact). */
  private readonly fenceColors: Uint32Array;
  /** Per vertex, the colour of the part its ring belongs to (an edge is named by its first vertex). */
  private readonly vertColor: Uint32Array;
  /** Scratch parity words for fences with more than 32 colours. */
  private readonly parity: Int32Array;
  private readonly stack = new Int32Array(4096);
  /** Point-query cache: a uniform grid whose cells list the R-tree's candidates for the cell's box. */
  private readonly grid: PointGrid | null;
  /** Scratch buffer `queryPoint` fills; valid until the next call. */
  readonly hits: Int32Array;
  /** What indexing found questionable (self-intersecting rings), one line per fence; also logged as warnings. */
  readonly warnings: readonly string[];

  constructor(input: readonly Fence[], opts: FenceIndexOptions = {}) {
    // Fences crossing the antimeridian are split at 180 (the same objects come back when none does).
    const fences = input.map((f, i) => splitAntimeridian(f, `fences[${i}]`));
    this.fences = fences;
    const n = fences.length;
    let nVerts = 0;
    let nRings = 0;
    for (const f of fences) {
      const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
      for (const p of polys) for (const r of p) {
        nVerts += r.length;
        nRings++;
      }
    }
    this.coords = new Float64Array(nVerts * 2);
    this.bbox = new Float64Array(n * 4);
    this.bandMinY = new Float64Array(n);
    this.bandInvH = new Float64Array(n);
    this.bandCount = new Uint32Array(n);
    this.bandOff = new Uint32Array(n);
    this.ringStart = new Uint32Array(nRings);
    this.ringEnd = new Uint32Array(nRings);
    this.ringHole = new Uint8Array(nRings);
    this.fenceRingFrom = new Uint32Array(n);
    this.fenceRingTo = new Uint32Array(n);
    this.fenceColors = new Uint32Array(n);
    this.vertColor = new Uint32Array(nVerts);
    this.hits = new Int32Array(Math.max(1, n));
    /** Per ring, its part's index within the fence (for the self-intersection check). */
    const ringPart = new Uint32Array(nRings);
    const warnings: string[] = [];
    let maxColors = 1;
    const starts: number[] = [];
    const edges: number[] = [];
    let v = 0;
    let ri = 0;
    for (let i = 0; i < n; i++) {
      const f = fences[i]!;
      if (this.idToIndex.has(f.id)) {
        throw new GeoWatchError("CONFIG", `duplicate fence id ${JSON.stringify(f.id)}`, { backend: "spatial", path: `fences[${i}].id` });
      }
      this.idToIndex.set(f.id, i);
      let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
      this.fenceRingFrom[i] = ri;
      const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
      const colors = partColors(polys);
      let nColors = 1;
      for (const c of colors) if (c + 1 > nColors) nColors = c + 1;
      this.fenceColors[i] = nColors;
      if (nColors > maxColors) maxColors = nColors;
      let nEdges = 0;
      for (let pi = 0; pi < polys.length; pi++) {
        const p = polys[pi]!;
        const color = colors[pi]!;
        p.forEach((r, k) => {
          this.ringStart[ri] = v;
          this.ringHole[ri] = k > 0 ? 1 : 0;
          ringPart[ri] = pi;
          this.vertColor.fill(color, v, v + r.length);
          for (const pos of r) {
            const x = pos[0]!, y = pos[1]!;
            this.coords[2 * v] = x;
            this.coords[2 * v + 1] = y;
            v++;
            if (x < minX) minX = x;
            if (y < minY) minY = y;
            if (x > maxX) maxX = x;
            if (y > maxY) maxY = y;
          }
          this.ringEnd[ri] = v;
          nEdges += r.length - 1;
          ri++;
        });
      }
      this.fenceRingTo[i] = ri;
      this.bbox.set([minX, minY, maxX, maxY], 4 * i);
      // Bucket edges into bands of equal height; an edge goes into every band its y-range touches.
      const count = Math.max(1, Math.min(MAX_BANDS, Math.ceil(nEdges / EDGES_PER_BAND)));
      const invH = maxY > minY ? count / (maxY - minY) : 0;
      this.bandMinY[i] = minY;
      this.bandInvH[i] = invH;
      this.bandCount[i] = count;
      this.bandOff[i] = starts.length;
      const per: number[][] = Array.from({ length: count }, () => []);
      for (let r = this.fenceRingFrom[i]!; r < ri; r++) {
        for (let e = this.ringStart[r]!; e < this.ringEnd[r]! - 1; e++) {
          const y1 = this.coords[2 * e + 1]!, y2 = this.coords[2 * e + 3]!;
          const lo = Math.min(count - 1, Math.floor((Math.min(y1, y2) - minY) * invH));
          const hi = Math.min(count - 1, Math.floor((Math.max(y1, y2) - minY) * invH));
          for (let b = lo; b <= hi; b++) per[b]!.push(e);
        }
      }
      const crossing = firstCrossing(this.coords, per, this.fenceRingFrom[i]!, ri, this.ringStart, this.ringEnd, ringPart);
      if (crossing !== undefined) {
        warnings.push(`fence ${JSON.stringify(f.id)} (fences[${i}]) is self-intersecting: edges cross near ${crossing}; inside and outside follow the even-odd rule there`);
      }
      for (const list of per) {
        starts.push(edges.length);
        for (const e of list) edges.push(e);
      }
    }
    starts.push(edges.length);
    this.parity = new Int32Array(Math.ceil(maxColors / 32));
    this.warnings = warnings;
    if (opts.logger) for (const w of warnings) opts.logger.warn(w, { backend: "spatial" });
    this.bandStarts = Uint32Array.from(starts);
    this.bandEdges = Uint32Array.from(edges);
    if (n > 0) {
      const tree = new Flatbush(n);
      for (let i = 0; i < n; i++) tree.add(this.bbox[4 * i]!, this.bbox[4 * i + 1]!, this.bbox[4 * i + 2]!, this.bbox[4 * i + 3]!);
      tree.finish();
      this.tree = tree;
      this.grid = opts.pointGrid === false ? null : buildGrid(tree, n);
    } else {
      this.tree = null;
      this.grid = null;
    }
  }

  get size(): number {
    return this.fences.length;
  }

  /** Index of a fence id, or -1. */
  indexOf(id: string): number {
    return this.idToIndex.get(id) ?? -1;
  }

  /** Whether fence `i` contains the point (its boundary counts as inside, as in turf). */
  containsPoint(i: number, x: number, y: number): boolean {
    const b4 = 4 * i;
    const bb = this.bbox;
    if (x < bb[b4]! || y < bb[b4 + 1]! || x > bb[b4 + 2]! || y > bb[b4 + 3]!) return false;
    const count = this.bandCount[i]!;
    let b = ((y - this.bandMinY[i]!) * this.bandInvH[i]!) | 0;
    if (b >= count) b = count - 1;
    const at = this.bandOff[i]! + b;
    if (this.fenceColors[i]! > 1) return this.containsPointByColor(i, at, x, y);
    const end = this.bandStarts[at + 1]!;
    const c = this.coords;
    const edges = this.bandEdges;
    let inside = false;
    for (let k = this.bandStarts[at]!; k < end; k++) {
      const e = edges[k]! << 1;
      const y1 = c[e + 1]!, y2 = c[e + 3]!;
      if (y1 > y !== y2 > y) {
        const x1 = c[e]!;
        const xi = x1 + ((y - y1) * (c[e + 2]! - x1)) / (y2 - y1);
        if (x < xi) inside = !inside;
        else if (x === xi) return true;
      } else if (y1 === y && y2 === y) {
        const x1 = c[e]!, x2 = c[e + 2]!;
        if ((x1 <= x && x <= x2) || (x2 <= x && x <= x1)) return true;
      } else if ((y1 === y && c[e] === x) || (y2 === y && c[e + 2] === x)) return true;
    }
    return inside;
  }

  /** `containsPoint` for a fence with overlapping parts: even-odd per part colour, inside when any colour is odd. */
  private containsPointByColor(i: number, at: number, x: number, y: number): boolean {
    const end = this.bandStarts[at + 1]!;
    const c = this.coords;
    const edges = this.bandEdges;
    const colorOf = this.vertColor;
    const few = this.fenceColors[i]! <= 32;
    const words = this.parity;
    if (!few) words.fill(0);
    let mask = 0;
    for (let k = this.bandStarts[at]!; k < end; k++) {
      const ev = edges[k]!;
      const e = ev << 1;
      const y1 = c[e + 1]!, y2 = c[e + 3]!;
      if (y1 > y !== y2 > y) {
        const x1 = c[e]!;
        const xi = x1 + ((y - y1) * (c[e + 2]! - x1)) / (y2 - y1);
        if (x < xi) {
          const col = colorOf[ev]!;
          if (few) mask ^= 1 << col;
          else words[col >>> 5] = words[col >>> 5]! ^ (1 << (col & 31));
        } else if (x === xi) return true;
      } else if (y1 === y && y2 === y) {
        const x1 = c[e]!, x2 = c[e + 2]!;
        if ((x1 <= x && x <= x2) || (x2 <= x && x <= x1)) return true;
      } else if ((y1 === y && c[e] === x) || (y2 === y && c[e + 2] === x)) return true;
    }
    if (few) return mask !== 0;
    for (let w = 0; w < words.length; w++) if (words[w] !== 0) return true;
    return false;
  }

  /**
   * Fences containing the point: fills `hits` with their indices (ascending) and returns how many.
   * Looks up the point's grid cell, whose list the R-tree filled at build time, so a query allocates
   * nothing and touches one short list instead of walking the tree.
   */
  queryPoint(x: number, y: number): number {
    const g = this.grid;
    if (g === null) return this.queryPointTree(x, y);
    const fx = (x - g.x0) * g.invW, fy = (y - g.y0) * g.invH;
    if (!(fx >= 0 && fy >= 0 && fx <= g.nx && fy <= g.ny)) return 0;
    const cx = Math.min(g.nx - 1, fx | 0), cy = Math.min(g.ny - 1, fy | 0);
    const cell = cy * g.nx + cx;
    const items = g.items;
    const hits = this.hits;
    let n = 0;
    for (let k = g.start[cell]!, end = g.start[cell + 1]!; k < end; k++) {
      const i = items[k]!;
      if (this.containsPoint(i, x, y)) hits[n++] = i;
    }
    return n;
  }

  /**
   * `queryPoint` for `n` points (`xy`: x0, y0, x1, y1, ...): per point how many fences hold it, and their indices
   * (ascending per point) one point after the other.
   */
  queryPoints(xy: Float64Array, n: number): { counts: Uint32Array; hits: Int32Array } {
    const counts = new Uint32Array(n);
    // Most points are in at most one fence: a buffer of 2 per point is filled in one pass; more hits, a larger one.
    for (let cap = Math.max(16, n * 2); ; cap *= 2) {
      const hits = new Int32Array(cap);
      const used = this.queryPointsInto(xy, 0, n, counts, 0, hits, 0, cap);
      if (used >= 0) return { counts, hits: hits.slice(0, used) };
    }
  }

  /**
   * `queryPoints` into given arrays (a worker's shared ring): the `n` points from `xy[xyAt]` on, their counts from
   * `counts[countsAt]` on, their fence indices from `hits[hitsAt]` on. Returns the number of hits written, or -1
   * when there are more than `hitCap` (the counts are all written then).
   */
  queryPointsInto(xy: Float64Array, xyAt: number, n: number, counts: Uint32Array, countsAt: number, hits: Int32Array, hitsAt: number, hitCap: number): number {
    let used = 0;
    for (let p = 0; p < n; p++) {
      const k = this.queryPoint(xy[xyAt + 2 * p]!, xy[xyAt + 2 * p + 1]!);
      counts[countsAt + p] = k;
      if (used < 0) continue;
      if (used + k > hitCap) {
        used = -1;
        continue;
      }
      for (let j = 0; j < k; j++) hits[hitsAt + used + j] = this.hits[j]!;
      used += k;
    }
    return used;
  }

  /**
   * What `queryPoint` reads, as data a worker thread can take (postMessage copies typed arrays), or undefined for
   * an index without a point grid. `FenceIndex.forPointQueries` makes an index of it that answers point queries.
   */
  pointQueryData(): PointQueryData | undefined {
    if (this.grid === null) return undefined;
    return {
      grid: this.grid, coords: this.coords, bbox: this.bbox, bandMinY: this.bandMinY, bandInvH: this.bandInvH,
      bandCount: this.bandCount, bandOff: this.bandOff, bandStarts: this.bandStarts, bandEdges: this.bandEdges,
      fenceColors: this.fenceColors, vertColor: this.vertColor, parityWords: this.parity.length, n: this.fences.length,
    };
  }

  /** An index that answers `queryPoint`, `queryPoints` and `queryPointsInto` only, from `pointQueryData()` (in a worker thread). */
  static forPointQueries(d: PointQueryData): FenceIndex {
    const ix = Object.create(FenceIndex.prototype) as FenceIndex;
    const none32 = new Uint32Array(0);
    Object.assign(ix, {
      fences: [], idToIndex: new Map<string, number>(), tree: null,
      coords: d.coords, bbox: d.bbox, bandMinY: d.bandMinY, bandInvH: d.bandInvH, bandCount: d.bandCount, bandOff: d.bandOff,
      bandStarts: d.bandStarts, bandEdges: d.bandEdges, ringStart: none32, ringEnd: none32, ringHole: new Uint8Array(0),
      fenceRingFrom: none32, fenceRingTo: none32, fenceColors: d.fenceColors, vertColor: d.vertColor,
      parity: new Int32Array(d.parityWords), stack: new Int32Array(4096), grid: d.grid, hits: new Int32Array(Math.max(1, d.n)), warnings: [],
    });
    return ix;
  }

  /** Like `queryPoint`, by walking the packed R-tree (used when there is no grid; also checks the grid in tests). */
  queryPointTree(x: number, y: number): number {
    const tree = this.tree;
    if (tree === null) return 0;
    const boxes = tree._boxes;
    const indices = tree._indices;
    const levelBounds = tree._levelBounds;
    const nodeSize = tree.nodeSize;
    const numItems4 = tree.numItems * 4;
    const stack = this.stack;
    const hits = this.hits;
    let n = 0;
    let sp = 0;
    let nodeIndex = boxes.length - 4;
    let level = levelBounds.length - 1;
    for (;;) {
      const end = Math.min(nodeIndex + nodeSize * 4, levelBounds[level]!);
      const isNode = nodeIndex >= numItems4;
      for (let pos = nodeIndex; pos < end; pos += 4) {
        if (x < boxes[pos]! || y < boxes[pos + 1]! || x > boxes[pos + 2]! || y > boxes[pos + 3]!) continue;
        const index = indices[pos >> 2]!;
        if (isNode) {
          stack[sp++] = index;
          stack[sp++] = level - 1;
        } else if (this.containsPoint(index, x, y)) hits[n++] = index;
      }
      if (sp === 0) return n;
      level = stack[--sp]!;
      nodeIndex = stack[--sp]!;
    }
  }

  /** Indices of fences whose bounding box meets the box. */
  candidates(minX: number, minY: number, maxX: number, maxY: number): number[] {
    return this.tree === null ? [] : this.tree.search(minX, minY, maxX, maxY);
  }

  /** Whether segment ab meets an edge of fence `i` (only edges in the bands its y-range spans). */
  segmentMeetsEdges(i: number, ax: number, ay: number, bx: number, by: number, proper: boolean): boolean {
    const b4 = 4 * i;
    const bb = this.bbox;
    const sMinX = Math.min(ax, bx), sMaxX = Math.max(ax, bx), sMinY = Math.min(ay, by), sMaxY = Math.max(ay, by);
    if (sMaxX < bb[b4]! || sMaxY < bb[b4 + 1]! || sMinX > bb[b4 + 2]! || sMinY > bb[b4 + 3]!) return false;
    const count = this.bandCount[i]!;
    const minY = this.bandMinY[i]!, invH = this.bandInvH[i]!;
    const lo = Math.max(0, Math.min(count - 1, Math.floor((sMinY - minY) * invH)));
    const hi = Math.max(0, Math.min(count - 1, Math.floor((sMaxY - minY) * invH)));
    const c = this.coords;
    const off = this.bandOff[i]!;
    for (let k = this.bandStarts[off + lo]!, end = this.bandStarts[off + hi + 1]!; k < end; k++) {
      const e = this.bandEdges[k]! << 1;
      const cx = c[e]!, cy = c[e + 1]!, dx = c[e + 2]!, dy = c[e + 3]!;
      if (Math.max(cx, dx) < sMinX || Math.min(cx, dx) > sMaxX || Math.max(cy, dy) < sMinY || Math.min(cy, dy) > sMaxY) continue;
      if (segmentsMeet(ax, ay, bx, by, cx, cy, dx, dy, proper)) return true;
    }
    return false;
  }

  private lineMeets(i: number, line: Position[], predicate: Predicate): boolean {
    const within = predicate === "within";
    for (let k = 0; k < line.length; k++) {
      const p = line[k]!;
      const inside = this.containsPoint(i, p[0]!, p[1]!);
      if (!within && inside) return true;
      if (within && !inside) return false;
      if (k === 0) continue;
      const q = line[k - 1]!;
      const ax = q[0]!, ay = q[1]!, bx = p[0]!, by = p[1]!;
      if (this.segmentMeetsEdges(i, ax, ay, bx, by, within)) return !within;
      // A segment between two inside vertices that grazes the boundary at a vertex may still leave the fence.
      if (within && !this.containsPoint(i, (ax + bx) / 2, (ay + by) / 2)) return false;
    }
    return within;
  }

  private polygonMeets(i: number, rings: Position[][], predicate: Predicate): boolean {
    for (const ring of rings) {
      const r = this.lineMeets(i, ring, predicate);
      if (predicate === "intersects" && r) return true;
      if (predicate === "within" && !r) return false;
    }
    // No vertex or edge met: either disjoint, or the fence (or one of its holes) lies wholly inside the polygon.
    const c = this.coords;
    for (let r = this.fenceRingFrom[i]!; r < this.fenceRingTo[i]!; r++) {
      const hole = this.ringHole[r] === 1;
      if (predicate === "intersects" && hole) continue;
      const v = this.ringStart[r]! << 1;
      const inPoly = pointInRings(rings, c[v]!, c[v + 1]!);
      if (predicate === "intersects" && inPoly) return true;
      if (predicate === "within" && hole && inPoly) return false;
    }
    return predicate === "within";
  }

  /** Whether a geometry intersects, or lies within, fence `i`. Multi-part geometries: any part / every part. */
  test(i: number, g: Geometry, predicate: Predicate): boolean {
    const any = predicate === "intersects";
    switch (g.type) {
      case "Point":
        return this.containsPoint(i, g.coordinates[0]!, g.coordinates[1]!);
      case "MultiPoint":
        return any
          ? g.coordinates.some((p) => this.containsPoint(i, p[0]!, p[1]!))
          : g.coordinates.length > 0 && g.coordinates.every((p) => this.containsPoint(i, p[0]!, p[1]!));
      case "LineString":
        return this.lineMeets(i, g.coordinates, predicate);
      case "MultiLineString":
        return any
          ? g.coordinates.some((l) => this.lineMeets(i, l, predicate))
          : g.coordinates.length > 0 && g.coordinates.every((l) => this.lineMeets(i, l, predicate));
      case "Polygon":
        return this.polygonMeets(i, g.coordinates, predicate);
      case "MultiPolygon":
        return any
          ? g.coordinates.some((p) => this.polygonMeets(i, p, predicate))
          : g.coordinates.length > 0 && g.coordinates.every((p) => this.polygonMeets(i, p, predicate));
      case "GeometryCollection":
        return any
          ? g.geometries.some((c) => this.test(i, c, predicate))
          : g.geometries.length > 0 && g.geometries.every((c) => this.test(i, c, predicate));
    }
  }

  /** Indices of the fences a geometry intersects or lies within. Points take the allocation-free path. */
  matching(g: Geometry, predicate: Predicate): number[] {
    if (g.type === "Point") {
      const n = this.queryPoint(g.coordinates[0]!, g.coordinates[1]!);
      return Array.from(this.hits.subarray(0, n));
    }
    const bb = geometryBBox(g);
    if (!(bb[0]! <= bb[2]!)) return [];
    const out: number[] = [];
    for (const i of this.candidates(bb[0]!, bb[1]!, bb[2]!, bb[3]!)) {
      if (predicate === "within") {
        const b4 = 4 * i;
        if (bb[0]! < this.bbox[b4]! || bb[1]! < this.bbox[b4 + 1]! || bb[2]! > this.bbox[b4 + 2]! || bb[3]! > this.bbox[b4 + 3]!) continue;
      }
      if (this.test(i, g, predicate)) out.push(i);
    }
    return out.sort((a, b) => a - b);
  }

  /** Whether the segment from (ax, ay) to (bx, by) passes through fence `i` (used for `cross` events). */
  segmentCrosses(i: number, ax: number, ay: number, bx: number, by: number): boolean {
    return this.segmentMeetsEdges(i, ax, ay, bx, by, false);
  }
}

/** Bounding box of a polygon's outer ring. */
function outerBox(rings: Position[][]): [number, number, number, number] {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const p of rings[0] ?? []) {
    const x = p[0]!, y = p[1]!;
    if (x < minX) minX = x;
    if (y < minY) minY = y;
    if (x > maxX) maxX = x;
    if (y > maxY) maxY = y;
  }
  return [minX, minY, maxX, maxY];
}

/**
 * A colour per part such that parts whose outer boxes overlap differ (greedy; all 0 for a Polygon or for parts
 * that never overlap). Parts of one colour cannot both contain a point, so even-odd within a colour is exact.
 */
function partColors(polys: Position[][][]): number[] {
  const colors = new Array<number>(polys.length).fill(0);
  if (polys.length < 2) return colors;
  const boxes = polys.map(outerBox);
  const taken: number[] = [];
  for (let a = 1; a < polys.length; a++) {
    const A = boxes[a]!;
    taken.length = 0;
    for (let b = 0; b < a; b++) {
      const B = boxes[b]!;
      if (A[0] <= B[2] && B[0] <= A[2] && A[1] <= B[3] && B[1] <= A[3]) taken.push(colors[b]!);
    }
    let c = 0;
    while (taken.includes(c)) c++;
    colors[a] = c;
  }
  return colors;
}

/**
 * Where two edges of one polygon part cross through both their interiors (a bow-tie, a hole cutting its outer
 * ring), as "x,y"; undefined when none do. Touching at a vertex and collinear overlaps (left by clipping) are not
 * crossings. Only edges sharing a band can cross, so this looks at pairs within each band.
 */
function firstCrossing(
  c: Float64Array, bands: number[][], ringFrom: number, ringTo: number,
  ringStart: Uint32Array, ringEnd: Uint32Array, ringPart: Uint32Array,
): string | undefined {
  const partOf = (e: number): number => {
    for (let r = ringFrom; r < ringTo; r++) if (e >= ringStart[r]! && e < ringEnd[r]!) return ringPart[r]!;
    return -1;
  };
  const multiRing = ringTo - ringFrom > 1;
  for (const list of bands) {
    for (let a = 0; a < list.length; a++) {
      const ea = list[a]! << 1;
      const ax = c[ea]!, ay = c[ea + 1]!, bx = c[ea + 2]!, by = c[ea + 3]!;
      for (let b = a + 1; b < list.length; b++) {
        const eb = list[b]! << 1;
        const cx = c[eb]!, cy = c[eb + 1]!, dx = c[eb + 2]!, dy = c[eb + 3]!;
        if (Math.max(ax, bx) < Math.min(cx, dx) || Math.max(cx, dx) < Math.min(ax, bx)) continue;
        if (Math.max(ay, by) < Math.min(cy, dy) || Math.max(cy, dy) < Math.min(ay, by)) continue;
        if (!segmentsMeet(ax, ay, bx, by, cx, cy, dx, dy, true)) continue;
        // Parts of a MultiPolygon may overlap (their union is the fence); rings of one part may not cross.
        if (multiRing && partOf(list[a]!) !== partOf(list[b]!)) continue;
        const d1 = orient(cx, cy, dx, dy, ax, ay), d2 = orient(cx, cy, dx, dy, bx, by);
        const t = d1 / (d1 - d2);
        return `${+(ax + t * (bx - ax)).toFixed(6)},${+(ay + t * (by - ay)).toFixed(6)}`;
      }
    }
  }
  return undefined;
}

/** Cells per fence the point grid aims for, and its largest side. */
const GRID_CELLS_PER_FENCE = 4;
const GRID_MAX_SIDE = 1024;

/** Largest number of grid entries (fence ids over all cells) per fence before the grid is given up. */
const GRID_ENTRIES_PER_FENCE = 64;

/**
 * The point grid over the fences' extent; each cell's list comes from an R-tree search of the cell's box.
 * Null when fences overlap so much that the lists would outgrow their budget: point queries then walk the tree.
 */
function buildGrid(tree: Flatbush, n: number): PointGrid | null {
  const budget = Math.max(1 << 20, n * GRID_ENTRIES_PER_FENCE);
  const w = tree.maxX - tree.minX, h = tree.maxY - tree.minY;
  const cells = Math.min(GRID_MAX_SIDE * GRID_MAX_SIDE, Math.max(1, n * GRID_CELLS_PER_FENCE));
  // Square-ish cells in coordinate units.
  const side = w > 0 && h > 0 ? Math.sqrt((w * h) / cells) : Math.max(w, h) / cells || 1;
  const nx = Math.max(1, Math.min(GRID_MAX_SIDE, Math.ceil(w / side)));
  const ny = Math.max(1, Math.min(GRID_MAX_SIDE, Math.ceil(h / side)));
  const cw = w / nx || 1, ch = h / ny || 1;
  const start = new Uint32Array(nx * ny + 1);
  let items = new Uint32Array(Math.max(16, n * 2));
  let used = 0;
  for (let cy = 0; cy < ny; cy++) {
    for (let cx = 0; cx < nx; cx++) {
      const x0 = tree.minX + cx * cw, y0 = tree.minY + cy * ch;
      // A hair wider than the cell, so rounding at a cell edge never drops a fence.
      const ex = cw * 1e-9, ey = ch * 1e-9;
      const found = tree.search(x0 - ex, y0 - ey, x0 + cw + ex, y0 + ch + ey).sort((a, b) => a - b);
      if (used + found.length > budget) return null;
      if (used + found.length > items.length) {
        const bigger = new Uint32Array(Math.max(items.length * 2, used + found.length));
        bigger.set(items.subarray(0, used));
        items = bigger;
      }
      items.set(found, used);
      used += found.length;
      start[cy * nx + cx + 1] = used;
    }
  }
  return { x0: tree.minX, y0: tree.minY, invW: 1 / cw, invH: 1 / ch, nx, ny, start, items: items.slice(0, used) };
}

/** See `FenceIndex.pointQueryData`. */
export interface PointQueryData {
  grid: PointGrid;
  coords: Float64Array;
  bbox: Float64Array;
  bandMinY: Float64Array;
  bandInvH: Float64Array;
  bandCount: Uint32Array;
  bandOff: Uint32Array;
  bandStarts: Uint32Array;
  bandEdges: Uint32Array;
  fenceColors: Uint32Array;
  vertColor: Uint32Array;
  parityWords: number;
  n: number;
}

/** How a FenceIndex is built. */
export interface FenceIndexOptions {
  /**
   * Answer point queries from a uniform grid filled from the R-tree (fast, some memory) instead of walking the
   * tree. Default `true`; the grid is skipped anyway when heavily overlapping fences would make it too big.
   */
  pointGrid?: boolean;
  /** Where warnings about fences go (a self-intersecting ring, naming the fence). Default: none; see `warnings`. */
  logger?: Logger;
}

/** Builds the index of a set of fences. */
export function createFenceIndex(fences: readonly Fence[], opts: FenceIndexOptions = {}): FenceIndex {
  return new FenceIndex(fences, opts);
}

/** An index from a fence source: a FenceIndex as is, else fences loaded from a file path or FeatureCollection. */
export function resolveFences(source: string | object, opts: LoadFencesOptions & { logger?: Logger } = {}): FenceIndex {
  if (source instanceof FenceIndex) return source;
  const { logger, ...load } = opts;
  return new FenceIndex(loadFences(source, load), logger ? { logger } : {});
}
