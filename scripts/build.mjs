// Compiles src/ to dist/ and copies the SQL files and the dashboard's static
// files next to the modules that read them.
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], {
  stdio: "inherit",
});
// Only the .sql files: db/queries also holds the TypeScript modules that load
// them, which tsc has compiled to dist/ already.
for (const dir of ["db/migrations", "db/queries", "dashboard/public"]) {
  cpSync(`src/${dir}`, `dist/${dir}`, {
    recursive: true,
    filter: (source) => !source.endsWith(".ts"),
  });
}
