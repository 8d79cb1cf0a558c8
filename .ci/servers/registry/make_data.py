"""Test data for the registry's OGC servers: 24 polygons (a 6 x 4 grid of cells over the world) with a name,
a kind and a date in 2013, written as GeoJSON. usage: make_data.py OUT.geojson"""
import json
import sys

features = []
n = 0
for row in range(4):
    for col in range(6):
        minx, miny = -180 + col * 60 + 5, -90 + row * 45 + 5
        maxx, maxy = minx + 50, miny + 35
        n += 1
        features.append({
            "type": "Feature",
            "properties": {"num": n, "name": f"cell {n}", "kind": ["forest", "lake", "city"][n % 3],
                           "when": f"2013-{(n % 12) + 1:02d}-15"},
            "geometry": {"type": "Polygon", "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]]},
        })
# `metadata` is a foreign member Koop reads for the FeatureServer description; GDAL ignores it.
meta = {"title": "Registry test cells", "name": "cells", "description": "Grid cells with a kind and a date"}
json.dump({"type": "FeatureCollection", "metadata": meta, "features": features}, open(sys.argv[1], "w"))
