// Regenerate src/api/schema.d.ts from the gateway's merged OpenAPI document.
// The document comes from scripts/dump_openapi.py (the repository's Python environment,
// no server needed); tests/web/test_api_types.py fails when the committed file drifts.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const web = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const root = resolve(web, "..");
const venvPython = join(root, ".venv", "bin", "python");
const python = process.env.PYTHON ?? (existsSync(venvPython) ? venvPython : "python3");

const folder = mkdtempSync(join(tmpdir(), "tidewater-openapi-"));
try {
  const documentPath = join(folder, "openapi.json");
  const document = execFileSync(python, [join(web, "scripts", "dump_openapi.py")], {
    cwd: root,
    maxBuffer: 64 * 1024 * 1024,
  });
  writeFileSync(documentPath, document);
  execFileSync(
    join(web, "node_modules", ".bin", "openapi-typescript"),
    [documentPath, "--output", join(web, "src", "api", "schema.d.ts")],
    { cwd: web, stdio: "inherit" },
  );
} finally {
  rmSync(folder, { recursive: true, force: true });
}
