// PostGraphile's own CLI in WORKERS processes sharing one port (Node's `cluster`), so that
// bench/run.py --workers N compares N processes of each server. With WORKERS unset or 1 it is
// the CLI alone, in this process.
"use strict";
const cluster = require("node:cluster");

const workers = Number(process.env.WORKERS ?? 1);
if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i += 1) cluster.fork();
  cluster.on("exit", (worker, code, signal) => {
    console.error(`postgraphile worker ${worker.process.pid} exited (${signal ?? code})`);
    process.exit(1); // a measurement with a worker missing would be wrong: stop the run
  });
  for (const name of ["SIGTERM", "SIGINT"]) {
    process.on(name, () => {
      for (const worker of Object.values(cluster.workers)) worker.process.kill(name);
      process.exit(0);
    });
  }
} else {
  // The CLI by its file: the package exports no path to it.
  require(require("node:path").join(__dirname, "node_modules/postgraphile/dist/cli-run.js"));
}
