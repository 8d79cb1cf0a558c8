// Starts kinesalite on 127.0.0.1 only (its CLI binds every interface). Args: PORT [DIR]
"use strict";
const path = require("node:path");
const port = Number(process.argv[2]);
const dir = process.argv[3];
const kinesalite = require(path.join(process.env.KINESALITE_HOME, "node_modules", "kinesalite"));
// createStreamMs/deleteStreamMs 0: streams are ACTIVE at once; shardLimit well above what tests create.
const opts = { shardLimit: 1000, createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0 };
if (dir) opts.path = dir;
const server = kinesalite(opts);
server.listen(port, "127.0.0.1", (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`kinesalite listening on 127.0.0.1:${port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
