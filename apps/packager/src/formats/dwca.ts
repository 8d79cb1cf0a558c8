/**
 * A Darwin Core Archive (/package_dwc_archive), as ckanpackager made it: datastore fields are Darwin Core
 * terms written with spaces ("Taxon resource ID" for taxonResourceID); a field whose name, or camel-cased
 * name, is an Occurrence core term becomes a core column; fields listed in `extensionFields` hold JSON lists
 * of extension rows (associatedMedia -> the GBIF Simple Multimedia extension); every other field goes into
 * the core's dynamicProperties as JSON. meta.xml describes the files, eml.xml is the dataset metadata.
 * The extension rows go to a temp file first (yazl writes one entry at a time), then into the ZIP.
 */
import { createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import type { Field } from "../sources/datastore.js";
import type { EntrySink } from "../zip.js";
import { cellText, visibleFields } from "./types.js";
import type { RowWriter, WriterContext } from "./types.js";

const DWC = "http://rs.tdwg.org/dwc/terms/";
const DC = "http://purl.org/dc/terms/";

/** Occurrence core terms (Darwin Core, with the dcterms record-level terms it uses). */
const DC_TERMS = ["type", "modified", "language", "license", "rightsHolder", "accessRights", "bibliographicCitation", "references"];
const DWC_TERMS = `institutionID collectionID datasetID institutionCode collectionCode datasetName ownerInstitutionCode basisOfRecord
informationWithheld dataGeneralizations dynamicProperties occurrenceID catalogNumber recordNumber recordedBy recordedByID
individualCount organismQuantity organismQuantityType sex lifeStage reproductiveCondition caste behavior vitality
establishmentMeans degreeOfEstablishment pathway georeferenceVerificationStatus occurrenceStatus preparations disposition
associatedMedia associatedOccurrences associatedReferences associatedSequences associatedTaxa otherCatalogNumbers
occurrenceRemarks organismID organismName organismScope associatedOrganisms previousIdentifications organismRemarks
materialEntityID materialSampleID eventID parentEventID eventType fieldNumber eventDate eventTime startDayOfYear endDayOfYear
year month day verbatimEventDate habitat samplingProtocol sampleSizeValue sampleSizeUnit samplingEffort fieldNotes eventRemarks
locationID higherGeographyID higherGeography continent waterBody islandGroup island country countryCode stateProvince county
municipality locality verbatimLocality minimumElevationInMeters maximumElevationInMeters verbatimElevation
verticalDatum minimumDepthInMeters maximumDepthInMeters verbatimDepth minimumDistanceAboveSurfaceInMeters
maximumDistanceAboveSurfaceInMeters locationAccordingTo locationRemarks decimalLatitude decimalLongitude geodeticDatum
coordinateUncertaintyInMeters coordinatePrecision pointRadiusSpatialFit verbatimCoordinates verbatimLatitude
verbatimLongitude verbatimCoordinateSystem verbatimSRS footprintWKT footprintSRS footprintSpatialFit georeferencedBy
georeferencedDate georeferenceProtocol georeferenceSources georeferenceRemarks geologicalContextID
earliestEonOrLowestEonothem latestEonOrHighestEonothem earliestEraOrLowestErathem latestEraOrHighestErathem
earliestPeriodOrLowestSystem latestPeriodOrHighestSystem earliestEpochOrLowestSeries latestEpochOrHighestSeries
earliestAgeOrLowestStage latestAgeOrHighestStage lowestBiostratigraphicZone highestBiostratigraphicZone
lithostratigraphicTerms group formation member bed identificationID verbatimIdentification identificationQualifier
typeStatus identifiedBy identifiedByID dateIdentified identificationReferences identificationVerificationStatus
identificationRemarks taxonID scientificNameID acceptedNameUsageID parentNameUsageID originalNameUsageID
nameAccordingToID namePublishedInID taxonConceptID scientificName acceptedNameUsage parentNameUsage originalNameUsage
nameAccordingTo namePublishedIn namePublishedInYear higherClassification kingdom phylum class order family subfamily
genus genericName subgenus infragenericEpithet specificEpithet infraspecificEpithet cultivarEpithet taxonRank
verbatimTaxonRank scientificNameAuthorship vernacularName nomenclaturalCode taxonomicStatus nomenclaturalStatus
taxonRemarks`.split(/\s+/);

const MULTIMEDIA_TERMS: Record<string, string> = Object.fromEntries(
  ["type", "format", "identifier", "references", "title", "description", "created", "creator", "contributor", "publisher", "audience", "source", "license", "rightsHolder"].map((t) => [t, DC + t]),
);

const CORE_TERMS = new Map<string, string>([...DC_TERMS.map((t) => [t.toLowerCase(), DC + t] as const), ...DWC_TERMS.map((t) => [t.toLowerCase(), DWC + t] as const)]);
const CORE_NAMES = new Map<string, string>([...DC_TERMS, ...DWC_TERMS].map((t) => [t.toLowerCase(), t]));

/** "Taxon resource ID" -> "taxonResourceID"; a name that already is a term stays. */
export function camelTerm(name: string): string {
  const words = name.trim().split(/[\s_]+/).filter(Boolean);
  return words.map((w, i) => (i === 0 ? w[0]!.toLowerCase() + w.slice(1) : w[0]!.toUpperCase() + w.slice(1))).join("");
}

export interface DwcOptions {
  idField: string;
  dynamicTerm: string;
  extensionFields: Record<string, { extension: "multimedia"; fields: Record<string, string> }>;
}

const tsv = (v: unknown) => cellText(v).replace(/[\t\r\n]+/g, " ");
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function dwcaWriter(ctx: WriterContext & { resourceTitle?: string }, o: DwcOptions): RowWriter {
  let core: EntrySink | undefined;
  let idCol = -1;
  const coreCols: { i: number; term: string }[] = [];
  const dynamicCols: { i: number; key: string }[] = [];
  const extCols: { i: number; key: string; fields: [string, string][] }[] = [];
  const extPath = join(ctx.tempDir, `${ctx.name}-${process.pid}-${Date.now()}-multimedia.txt`);
  let ext: WriteStream | undefined;
  let extRows = 0;

  return {
    async begin(fields: Field[]) {
      const visible = visibleFields(fields);
      idCol = fields.findIndex((f) => f.id === o.idField);
      if (idCol < 0) throw new Error(`the id field "${o.idField}" is not among the resource's fields`);
      const dynamicLower = o.dynamicTerm.toLowerCase();
      const used = new Set<string>();
      for (const i of visible) {
        if (i === idCol) continue;
        const name = fields[i]!.id;
        const extension = o.extensionFields[name] ?? o.extensionFields[camelTerm(name)];
        if (extension) {
          extCols.push({ i, key: name, fields: Object.entries(extension.fields) });
          continue;
        }
        const lower = name.toLowerCase();
        const termKey = CORE_TERMS.has(lower) ? lower : camelTerm(name).toLowerCase();
        const term = CORE_TERMS.get(termKey);
        if (term && termKey !== dynamicLower && !used.has(termKey)) {
          used.add(termKey);
          coreCols.push({ i, term });
        } else {
          dynamicCols.push({ i, key: name });
        }
      }
      const header = ["id", ...coreCols.map((c) => CORE_NAMES.get(c.term.replace(/^.*\//, "").toLowerCase())!), ...(dynamicCols.length ? [o.dynamicTerm] : [])];
      core = ctx.zip.entry("occurrence.txt");
      await core.write(header.join("\t") + "\n");
      if (extCols.length) ext = createWriteStream(extPath);
    },
    async write(rows) {
      let out = "";
      let extOut = "";
      for (const row of rows) {
        const id = tsv(row[idCol]);
        const cells = [id, ...coreCols.map((c) => tsv(row[c.i]))];
        if (dynamicCols.length) {
          const dyn: Record<string, unknown> = {};
          for (const d of dynamicCols) if (row[d.i] !== null && row[d.i] !== undefined && row[d.i] !== "") dyn[d.key] = row[d.i];
          cells.push(Object.keys(dyn).length ? tsv(JSON.stringify(dyn)) : "");
        }
        out += cells.join("\t") + "\n";
        for (const e of extCols) {
          let list: unknown = row[e.i];
          if (typeof list === "string") {
            try {
              list = JSON.parse(list);
            } catch {
              list = [];
            }
          }
          if (!Array.isArray(list)) continue;
          for (const item of list) {
            if (item === null || typeof item !== "object") continue;
            const obj = item as Record<string, unknown>;
            extOut += [id, ...e.fields.map(([k, dflt]) => tsv(obj[k] ?? dflt))].join("\t") + "\n";
            extRows++;
          }
        }
      }
      await core!.write(out);
      if (ext && extOut && !ext.write(extOut)) await new Promise<void>((r) => ext!.once("drain", () => r()));
    },
    async end() {
      core!.end();
      const extFields = extCols[0]?.fields ?? [];
      if (ext) {
        ext.end();
        await finished(ext);
        ctx.zip.file(extPath, "multimedia.txt");
        ctx.cleanup?.push(extPath);
      }
      const coreFields = [...coreCols.map((c, k) => `    <field index="${k + 1}" term="${c.term}"/>`), ...(dynamicCols.length ? [`    <field index="${coreCols.length + 1}" term="${DWC}${o.dynamicTerm}"/>`] : [])];
      const meta = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">',
        `  <core encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1" rowType="${DWC}Occurrence">`,
        "    <files><location>occurrence.txt</location></files>",
        '    <id index="0"/>',
        ...coreFields,
        "  </core>",
        ...(ext
          ? [
              '  <extension encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="0" rowType="http://rs.gbif.org/terms/1.0/Multimedia">',
              "    <files><location>multimedia.txt</location></files>",
              '    <coreid index="0"/>',
              ...extFields.map(([k], j) => `    <field index="${j + 1}" term="${MULTIMEDIA_TERMS[k] ?? DC + k}"/>`),
              "  </extension>",
            ]
          : []),
        "</archive>",
        "",
      ].join("\n");
      ctx.zip.buffer(meta, "meta.xml");
      const title = esc(ctx.resourceTitle ?? `Resource ${ctx.name}`);
      const eml = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="eml://ecoinformatics.org/eml-2.1.1 http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd" packageId="' + esc(ctx.name) + '" system="http://gbif.org" scope="system" xml:lang="en">',
        "  <dataset>",
        `    <title>${title}</title>`,
        "    <creator><organizationName>GeoWatch packager</organizationName></creator>",
        `    <pubDate>${new Date().toISOString().slice(0, 10)}</pubDate>`,
        "    <language>en</language>",
        `    <abstract><para>${title}: ${extRows} multimedia rows.</para></abstract>`,
        "    <contact><organizationName>GeoWatch packager</organizationName></contact>",
        "  </dataset>",
        "</eml:eml>",
        "",
      ].join("\n");
      ctx.zip.buffer(eml, "eml.xml");
    },
    async abort() {
      ext?.destroy();
      await rm(extPath, { force: true });
    },
  };
}
