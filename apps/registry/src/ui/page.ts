/** The HTML shell of the UI pages; the bundled script (dist/ui/app.js, Leaflet inside) renders them. */
export function pageHtml(page: "search" | "service"): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GeoWatch registry</title>
<link rel="stylesheet" href="/ui/leaflet.css">
<link rel="stylesheet" href="/ui/app.css">
</head>
<body data-page="${page}">
<header><a href="/">GeoWatch registry</a></header>
<main id="app"></main>
<script type="module" src="/ui/app.js"></script>
</body>
</html>`;
}
