// A Docker image for running a small Node program with no registry: FROM scratch, holding this host's node binary,
// the shared libraries `ldd` lists for it and the loader, at the same paths as on the host, plus the program as
// /server.mjs. Built with dockerode's buildImage from a build context that the system `tar` streams (the Dockerfile
// and the program from a temp dir, the binary and libraries straight from /, symlinks followed), the same way the
// busybox image is made from a `tar` stream: no extra npm dependency.
import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { followJsonStream, statusCodeOf } from "../../src/agent/runtime/docker-util.js";
import { withTarStream } from "../../src/agent/runtime/tar-stream.js";

export const NODE_IMAGE_REPO = "flotilla/bench-node";

/** The image's tag for this Node: flotilla/bench-node:<node version>. */
export const nodeImageTag = () => `${NODE_IMAGE_REPO}:${process.versions.node}`;

/** The binary the image runs, at its host path. */
export const nodeBinary = () => realpathSync(process.execPath);

/** The files `ldd` says `binary` needs: shared libraries and the ELF loader (absolute paths). */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync("ldd", [binary], { encoding: "utf8", timeout: 10_000 });
  const files = new Set<string>();
  for (const line of out.split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no file.
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) files.add(m[1]!);
  }
  if (files.size === 0) throw new Error(`ldd ${binary} listed no libraries: is it static? ${out.trim()}`);
  return [...files];
}

/**
 * Makes sure the image exists in `docker`, building it if not: `program` becomes /server.mjs and the entrypoint
 * is `[node, /server.mjs]` (a container's args are the program's). Resolves with the tag.
 */
export async function ensureNodeImage(docker: Dockerode, program: string, tag = nodeImageTag()): Promise<string> {
  try {
    await docker.getImage(tag).inspect();
    return tag;
  } catch (err) {
    if (statusCodeOf(err) !== 404) throw err;
  }
  const node = nodeBinary();
  const files = [node, ...sharedLibraries(node)].map((f) => f.replace(/^\/+/, ""));
  const dir = mkdtempSync(join(tmpdir(), "flotilla-bench-node-image-"));
  try {
    writeFileSync(join(dir, "server.mjs"), program);
    writeFileSync(join(dir, "Dockerfile"), `FROM scratch\nCOPY . /\nENTRYPOINT [${JSON.stringify(node)}, "/server.mjs"]\n`);
    const args = ["-c", "-h", "--owner=0", "--group=0", "--numeric-owner", "-C", dir, "Dockerfile", "server.mjs", "-C", "/", ...files];
    await withTarStream(args, `${tag}'s build context`, async (stream) => {
      try {
        await followJsonStream(docker, await docker.buildImage(stream, { t: tag, rm: true, forcerm: true }));
      } catch (err) {
        throw new Error(`building ${tag}: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return tag;
}
