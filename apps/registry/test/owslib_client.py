"""The CSW calls a QGIS MetaSearch user makes, through OWSLib, against the registry's /csw.
usage: owslib_client.py URL USER PASSWORD; prints one JSON object with what each call returned."""
import json
import sys

from owslib.csw import CatalogueServiceWeb
from owslib.fes import BBox, Not, PropertyIsEqualTo, PropertyIsLike, SortBy, SortProperty

url, user, password = sys.argv[1:4]
out = {}
csw = CatalogueServiceWeb(url, timeout=30)
out["title"] = csw.identification.title
out["operations"] = sorted(op.name for op in csw.operations)
out["getrecords_post"] = [m["url"] for m in csw.get_operation_by_name("GetRecords").methods if m["type"] == "Post"]

csw.getrecords2(esn="full", maxrecords=50, resulttype="results")
out["all"] = {"matched": csw.results["matches"], "returned": csw.results["returned"], "ids": sorted(csw.records.keys())}

csw.getrecords2(constraints=[PropertyIsLike("csw:AnyText", "%boston%")], esn="full", maxrecords=10)
out["anytext"] = sorted(csw.records.keys())
rec = csw.records.get("urn:geowatch:test:roads")
out["roads"] = None if rec is None else {"title": rec.title, "abstract": rec.abstract, "subjects": rec.subjects, "bbox": [rec.bbox.minx, rec.bbox.miny, rec.bbox.maxx, rec.bbox.maxy] if rec.bbox else None}

csw.getrecords2(constraints=[BBox([42.0, -72.0, 43.0, -70.0], crs="urn:ogc:def:crs:EPSG::4326")], esn="brief", maxrecords=10)
out["bbox"] = sorted(csw.records.keys())

csw.getrecords2(constraints=[[PropertyIsLike("csw:AnyText", "%s%"), PropertyIsEqualTo("dc:type", "dataset")]], esn="summary", maxrecords=10)
out["and"] = sorted(csw.records.keys())

csw.getrecords2(constraints=[PropertyIsLike("dc:title", "%rivers%"), PropertyIsLike("dc:title", "%roads%")], esn="brief", maxrecords=10)
out["or"] = sorted(csw.records.keys())

csw.getrecords2(constraints=[Not([PropertyIsLike("dc:title", "%rivers%")])], esn="brief", maxrecords=10)
out["not"] = sorted(csw.records.keys())

csw.getrecords2(esn="brief", resulttype="hits")
out["hits"] = {"matched": csw.results["matches"], "returned": csw.results["returned"]}

csw.getrecords2(esn="brief", maxrecords=2, startposition=1, sortby=SortBy([SortProperty("dc:title", "ASC")]))
page1 = [csw.records[k].title for k in csw.records]
nxt = csw.results["nextrecord"]
csw.getrecords2(esn="brief", maxrecords=2, startposition=nxt, sortby=SortBy([SortProperty("dc:title", "ASC")]))
out["paging"] = {"page1": page1, "next": nxt, "page2": [csw.records[k].title for k in csw.records]}

csw.getrecords2(esn="full", maxrecords=10, outputschema="http://www.isotc211.org/2005/gmd", constraints=[PropertyIsEqualTo("dc:identifier", "urn:geowatch:test:rivers")])
iso = csw.records.get("urn:geowatch:test:rivers")
out["iso"] = None if iso is None else {"title": iso.identification[0].title if isinstance(iso.identification, list) else iso.identification.title, "id": iso.identifier}

csw.getrecordbyid(id=["urn:geowatch:test:quakes", "urn:geowatch:test:nope"])
out["byid"] = sorted(csw.records.keys())

record = """<csw:Record xmlns:csw="http://www.opengis.net/cat/csw/2.0.2" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dct="http://purl.org/dc/terms/" xmlns:ows="http://www.opengis.net/ows">
<dc:identifier>urn:geowatch:test:inserted</dc:identifier><dc:title>Glaciers of Patagonia</dc:title><dct:abstract>Ice</dct:abstract><dc:subject>ice</dc:subject><dc:type>dataset</dc:type>
<ows:BoundingBox crs="urn:x-ogc:def:crs:EPSG:6.11:4326"><ows:LowerCorner>-55 -75</ows:LowerCorner><ows:UpperCorner>-40 -65</ows:UpperCorner></ows:BoundingBox></csw:Record>"""
try:
    anon = CatalogueServiceWeb(url, timeout=30, skip_caps=True)
    anon.transaction(ttype="insert", typename="csw:Record", record=record)
    out["insert_anonymous"] = f"refused: {anon.exceptionreport.exceptions}" if anon.exceptionreport else "accepted"
except Exception as e:  # noqa: BLE001 - any refusal is the expected outcome
    out["insert_anonymous"] = f"refused: {type(e).__name__}: {e}"[:300]

auth = CatalogueServiceWeb(url, timeout=30, username=user, password=password)
auth.transaction(ttype="insert", typename="csw:Record", record=record)
out["insert"] = auth.results
auth.transaction(ttype="update", typename="csw:Record", propertyname="dc:title", propertyvalue="Glaciers of Patagonia (2024)", identifier="urn:geowatch:test:inserted")
out["update"] = auth.results
auth.getrecordbyid(id=["urn:geowatch:test:inserted"])
out["after_update"] = [r.title for r in auth.records.values()]
auth.transaction(ttype="delete", typename="csw:Record", identifier="urn:geowatch:test:inserted")
out["delete"] = auth.results
auth.getrecordbyid(id=["urn:geowatch:test:inserted"])
out["after_delete"] = sorted(auth.records.keys())
print(json.dumps(out, default=str))
