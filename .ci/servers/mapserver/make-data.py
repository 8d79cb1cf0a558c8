"""Deterministic test data for the MapServer WFS/OGC API server: GeoJSON files that ogr2ogr loads into
a GeoPackage. `points`: 3000 points (paging); `lines` and `polygons`: LineStrings, MultiLineStrings, Polygons with holes, MultiPolygons;
`poll`: the layer the polling tests rewrite (starts with 5 features)."""
import json
import sys

out = sys.argv[1]


def fc(features):
    return {"type": "FeatureCollection", "features": features}


def write(name, features):
    with open(f"{out}/{name}.geojson", "w", encoding="utf-8") as f:
        json.dump(fc(features), f, ensure_ascii=False)


kinds = ["tree", "bench", "lamp", "sign"]
points = []
for i in range(1, 3001):
    lon = -10 + (i % 100) * 0.2          # -10 .. 9.8
    lat = 40 + (i // 100) * 0.1          # 40 .. 70
    points.append({
        "type": "Feature",
        "properties": {
            "num": i,
            "name": f"p{i}" if i % 7 else f"Zürich & <{i}>",
            "kind": kinds[i % 4],
            "value": i % 10,
            "updated": f"2026-01-{1 + i % 28:02d}T00:00:00Z",
        },
        "geometry": {"type": "Point", "coordinates": [round(lon, 4), round(lat, 4)]},
    })
write("points", points)

lines, polygons = [], []
n = 0
for i in range(100):
    x, y = -5 + (i % 10), 45 + (i // 10)
    n += 1
    lines.append({"type": "Feature", "properties": {"num": n, "shape": "line"},
                  "geometry": {"type": "LineString", "coordinates": [[x, y], [x + 0.5, y + 0.25], [x + 0.75, y]]}})
    n += 1
    n += 1
    lines.append({"type": "Feature", "properties": {"num": n, "shape": "multiline"},
                  "geometry": {"type": "MultiLineString", "coordinates": [[[x, y], [x + 0.1, y + 0.1]], [[x + 0.3, y], [x + 0.4, y + 0.1]]]}})
    n += 1
    polygons.append({"type": "Feature", "properties": {"num": n, "shape": "polygon"},
                  "geometry": {"type": "Polygon", "coordinates": [
                      [[x, y], [x + 0.8, y], [x + 0.8, y + 0.8], [x, y + 0.8], [x, y]],
                      [[x + 0.2, y + 0.2], [x + 0.2, y + 0.4], [x + 0.4, y + 0.4], [x + 0.4, y + 0.2], [x + 0.2, y + 0.2]]]}})
    n += 1
    polygons.append({"type": "Feature", "properties": {"num": n, "shape": "multipolygon"},
                  "geometry": {"type": "MultiPolygon", "coordinates": [
                      [[[x, y], [x + 0.1, y], [x + 0.1, y + 0.1], [x, y]]],
                      [[[x + 0.5, y + 0.5], [x + 0.6, y + 0.5], [x + 0.6, y + 0.6], [x + 0.5, y + 0.5]]]]}})
write("lines", lines)
write("polygons", polygons)

write("poll", [
    {"type": "Feature", "properties": {"num": i, "name": f"start{i}", "updated": f"2026-02-01T00:00:0{i}Z"},
     "geometry": {"type": "Point", "coordinates": [i, 50 + i]}}
    for i in range(1, 6)
])
