export { main, makeRuntime, EXIT } from "./cli.js";
export { loadConfigFile } from "./load.js";
export { projectImporter } from "./importer.js";
export { consoleBackend, consoleProducer } from "./console.js";
export type { ConsoleOptions } from "./console.js";
export { Metrics, startHttp } from "./metrics.js";
export { runConfigTests } from "./config-test.js";
