// Data for the gml benchmark: BENCH_N mixed-geometry GeoJSON features from a seeded PRNG, the same every run.
// Geometry mix: 35% Point, 20% LineString (3-20 vertices), 20% Polygon (8-40 vertices, every third with a hole),
// 5% MultiPoint, 7% MultiLineString, 10% MultiPolygon (2-3 parts), 3% GeometryCollection; lon/lat with 6 decimals.
// Properties: an integer, a float, a boolean, a name (every tenth with `&`, `<`, quotes), an empty string on every
// seventh feature and a null on every eleventh.

export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const round6 = (x) => Math.round(x * 1e6) / 1e6;

export function makeFeatures(n, seed = 42) {
  const r = rng(seed);
  const pt = (cx, cy, s) => [round6(cx + (r() - 0.5) * s), round6(cy + (r() - 0.5) * s)];
  const line = (cx, cy) => Array.from({ length: 3 + Math.floor(r() * 18) }, () => pt(cx, cy, 0.5));
  const ring = (cx, cy, rad, k) => {
    const pts = [];
    for (let i = 0; i < k; i++) {
      const a = (i / k) * 2 * Math.PI;
      const d = rad * (0.7 + 0.3 * r());
      pts.push([round6(cx + d * Math.cos(a)), round6(cy + d * Math.sin(a))]);
    }
    pts.push([...pts[0]]);
    return pts;
  };
  const polygon = (cx, cy, withHole) => {
    const k = 8 + Math.floor(r() * 33);
    const rings = [ring(cx, cy, 0.2, k)];
    if (withHole) rings.push(ring(cx, cy, 0.05, 6).reverse());
    return rings;
  };
  const features = [];
  for (let i = 0; i < n; i++) {
    const cx = -170 + r() * 340;
    const cy = -80 + r() * 160;
    const u = r();
    let geometry;
    if (u < 0.35) geometry = { type: "Point", coordinates: pt(cx, cy, 0) };
    else if (u < 0.55) geometry = { type: "LineString", coordinates: line(cx, cy) };
    else if (u < 0.75) geometry = { type: "Polygon", coordinates: polygon(cx, cy, i % 3 === 0) };
    else if (u < 0.8) geometry = { type: "MultiPoint", coordinates: Array.from({ length: 2 + Math.floor(r() * 5) }, () => pt(cx, cy, 1)) };
    else if (u < 0.87) geometry = { type: "MultiLineString", coordinates: [line(cx, cy), line(cx + 1, cy)] };
    else if (u < 0.97) geometry = { type: "MultiPolygon", coordinates: Array.from({ length: 2 + Math.floor(r() * 2) }, (_, j) => polygon(cx + j, cy, j === 0)) };
    else geometry = { type: "GeometryCollection", geometries: [{ type: "Point", coordinates: pt(cx, cy, 0) }, { type: "LineString", coordinates: line(cx, cy) }] };
    const properties = {
      seq: i,
      value: round6(r() * 1000 - 500),
      active: r() < 0.5,
      name: i % 10 === 0 ? `R&D <${i}> "quoted" 'x'` : `feature ${i}`,
      note: i % 7 === 0 ? "" : `n${i % 97}`,
      owner: i % 11 === 0 ? null : `u${i % 13}`,
    };
    features.push({ type: "Feature", id: `f${i}`, geometry, properties });
  }
  return features;
}
