"""QGIS Server project for the registry's tests: one polygon layer `cells` published for WMS, WMTS (PNG, per
layer), WFS and OGC API Features, with a fixed style. usage: /usr/bin/python3 make_qgis_project.py DIR"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import QgsApplication, QgsFillSymbol, QgsProject, QgsRectangle, QgsVectorLayer  # noqa: E402

out = sys.argv[1]
app = QgsApplication([], False)
app.initQgis()
project = QgsProject.instance()
project.setTitle("GeoWatch registry test cells")
project.writeEntry("WMSRootName", "/", "registry")
project.writeEntry("WMSServiceTitle", "/", "GeoWatch registry QGIS")
project.writeEntry("WMSServiceAbstract", "/", "Grid cells for registry harvest tests")
project.writeEntry("WMSKeywordList", "/", ["test", "cells"])
project.writeEntry("WMSServiceCapabilities", "/", True)
layer = QgsVectorLayer(os.path.join(out, "cells.gpkg") + "|layername=cells", "cells", "ogr")
if not layer.isValid():
    raise SystemExit("cells layer is not valid")
layer.renderer().setSymbol(QgsFillSymbol.createSimple({"color": "30,120,200,255", "outline_color": "0,0,0,255"}))
layer.setAbstract("Grid cells with a kind and a date")
layer.setKeywordList("cells,grid")
project.addMapLayer(layer)
lid = layer.id()
project.writeEntry("WFSLayers", "/", [lid])
project.writeEntry("WFSLayersPrecision", "/" + lid, 6)
project.writeEntry("WMSExtent", "/", ["-180", "-90", "180", "90"])
project.writeEntry("WMTSLayers", "Layer", [lid])
project.writeEntry("WMTSPngLayers", "Layer", [lid])
project.writeEntry("WMTSJpegLayers", "Layer", [])
if not project.write(os.path.join(out, "project.qgs")):
    raise SystemExit("could not write the project")
app.exitQgis()
