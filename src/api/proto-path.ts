// Where the .proto files live at run time (they ship with the package, for server reflection).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "proto", "flotilla", "v1"))) return join(dir, "proto");
    dir = dirname(dir);
  }
  throw new Error("cannot find the proto/ directory that ships with flotilla");
}
