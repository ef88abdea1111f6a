// Builds the busybox image that tests, benchmarks and `npm start` run, because no registry is reachable here.
// The image is a `docker import` of a tiny rootfs: the host's static /bin/busybox (Debian's busybox-static) plus
// one symlink per applet, so `sh`, `httpd`, `sleep` and friends resolve through the default PATH.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type Dockerode from "dockerode";
import { followJsonStream, splitTag, statusCodeOf } from "./docker-util.js";
import { withTarStream } from "./tar-stream.js";

export const BUSYBOX_PATH = "/bin/busybox";
export const DEFAULT_BUSYBOX_IMAGE = "flotilla/busybox:latest";

/** True when the host has a busybox binary that can run inside an empty image (that is, a static one). */
export function busyboxAvailable(): boolean {
  return existsSync(BUSYBOX_PATH) && !hasElfInterpreter(readFileSync(BUSYBOX_PATH));
}

/** Makes sure `tag` exists in the daemon, importing a fresh busybox rootfs if it does not; returns the tag. */
export async function ensureBusyboxImage(docker: Dockerode, tag = DEFAULT_BUSYBOX_IMAGE): Promise<string> {
  if (await imageExists(docker, tag)) return tag;
  if (!existsSync(BUSYBOX_PATH)) {
    throw new Error(`${BUSYBOX_PATH} not found: install Debian's busybox-static to build ${tag}`);
  }
  if (!busyboxAvailable()) {
    throw new Error(`${BUSYBOX_PATH} is dynamically linked and cannot run in an empty image: install busybox-static`);
  }
  const dir = await mkdtemp(join(tmpdir(), "flotilla-busybox-"));
  try {
    await buildRootfs(dir);
    await importRootfs(docker, dir, tag);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return tag;
}

async function imageExists(docker: Dockerode, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch (err) {
    if (statusCodeOf(err) === 404) return false;
    throw err;
  }
}

async function buildRootfs(dir: string): Promise<void> {
  for (const sub of ["bin", "etc", "www", "root", "tmp"]) await mkdir(join(dir, sub));
  // Sticky and world-writable, as every program expects of /tmp.
  await chmod(join(dir, "tmp"), 0o1777);
  await copyFile(BUSYBOX_PATH, join(dir, "bin/busybox"));
  await chmod(join(dir, "bin/busybox"), 0o755);
  for (const applet of await listApplets()) {
    if (applet === "busybox" || applet.includes("/")) continue;
    await symlink("busybox", join(dir, "bin", applet));
  }
  await writeFile(join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  await writeFile(join(dir, "etc/group"), "root:x:0:\n");
}

async function listApplets(): Promise<string[]> {
  const { stdout } = await promisify(execFile)(BUSYBOX_PATH, ["--list"]);
  return stdout.split("\n").filter((name) => name.length > 0);
}

async function importRootfs(docker: Dockerode, dir: string, tag: string): Promise<void> {
  const { repo, tag: version } = splitTag(tag);
  // Numeric root ownership so the image does not depend on who built it.
  await withTarStream(["-C", dir, "--owner=0", "--group=0", "--numeric-owner", "-c", "."], "the busybox rootfs", async (stream) => {
    await followJsonStream(docker, await docker.importImage(stream, { repo, tag: version, changes: ['CMD ["/bin/sh"]'] }));
  });
}

/** A dynamically linked ELF names its loader in a PT_INTERP program header; a static one has none. */
function hasElfInterpreter(elf: Buffer): boolean {
  const isElf64LittleEndian = elf.length > 64 && elf.readUInt32BE(0) === 0x7f454c46 && elf[4] === 2 && elf[5] === 1;
  if (!isElf64LittleEndian) return false;
  const PT_INTERP = 3;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 <= elf.length && elf.readUInt32LE(at) === PT_INTERP) return true;
  }
  return false;
}
