"""Builds the GeoWatch WFS-T test project for QGIS Server: one GeoPackage per layer, made empty (a known
state) on every run, and a project that publishes them for WFS 1.0/1.1 (read and Insert/Update/Delete) and
OGC API Features (/wfs3).

usage: /usr/bin/python3 make_project.py DIR NAME:GEOMETRYTYPE [NAME:GEOMETRYTYPE...]
Every layer has the fields uid (text), name (text), value (real), count (integer), flag (boolean),
updated (datetime) and a geometry column `geometry` of the given type, EPSG:4326. QGIS does not publish a
generic (any-type) column: an empty GeoPackage layer of type GEOMETRY loads as a layer without geometry,
and Inserts into it lose their geometry, so each geometry type gets its own layer.
"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from osgeo import ogr, osr  # noqa: E402
from qgis.core import QgsApplication, QgsProject, QgsVectorLayer  # noqa: E402


def make_gpkg(path, name, gtype):
    if os.path.exists(path):
        os.remove(path)
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    lyr = ds.CreateLayer(name, srs, gtype, ["GEOMETRY_NAME=geometry", "FID=fid"])
    lyr.CreateField(ogr.FieldDefn("uid", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("value", ogr.OFTReal))
    lyr.CreateField(ogr.FieldDefn("count", ogr.OFTInteger))
    flag = ogr.FieldDefn("flag", ogr.OFTInteger)
    flag.SetSubType(ogr.OFSTBoolean)
    lyr.CreateField(flag)
    lyr.CreateField(ogr.FieldDefn("updated", ogr.OFTDateTime))
    ds.ExecuteSQL(f'CREATE INDEX "{name}_uid" ON "{name}" (uid)')
    ds = None


TYPES = {
    "Point": ogr.wkbPoint,
    "LineString": ogr.wkbLineString,
    "Polygon": ogr.wkbPolygon,
    "MultiPoint": ogr.wkbMultiPoint,
    "MultiLineString": ogr.wkbMultiLineString,
    "MultiPolygon": ogr.wkbMultiPolygon,
    "GeometryCollection": ogr.wkbGeometryCollection,
}


def main():
    out_dir, layers = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    project.setTitle("GeoWatch WFS-T tests")
    project.writeEntry("WMSRootName", "/", "geowatch")
    ids = []
    for spec in layers:
        name, _, type_name = spec.partition(":")
        gtype = TYPES[type_name or "Point"]
        path = os.path.join(out_dir, f"{name}.gpkg")
        make_gpkg(path, name, gtype)
        layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
        if not layer.isValid():
            raise SystemExit(f"layer {name} is not valid")
        project.addMapLayer(layer)
        ids.append(layer.id())
    project.writeEntry("WFSLayers", "/", ids)
    for op in ("Insert", "Update", "Delete"):
        project.writeEntry("WFSTLayers", op, ids)
    for lid in ids:
        project.writeEntry("WFSLayersPrecision", "/" + lid, 8)
    project.writeEntry("WMSServiceCapabilities", "/", True)
    if not project.write(os.path.join(out_dir, "project.qgs")):
        raise SystemExit("could not write the project")
    app.exitQgis()


main()
