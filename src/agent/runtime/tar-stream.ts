// Feeds `tar -c ARGS` to a consumer of its stdout (docker's image import or build) and checks both ended well.
import { spawn } from "node:child_process";
import type { Readable } from "node:stream";

/**
 * Runs tar with `args`, hands its stdout to `consume`, and resolves once both are done. If `consume` fails, tar is
 * killed (it would otherwise block for ever on a pipe nobody reads) and that error is thrown; if tar fails, its
 * exit code and stderr are, with `what` saying what was being packed.
 */
export async function withTarStream(args: string[], what: string, consume: (stream: Readable) => Promise<void>): Promise<void> {
  const tar = spawn("tar", args, { stdio: ["ignore", "pipe", "pipe"] });
  let tarErrors = "";
  tar.stderr.on("data", (chunk: Buffer) => (tarErrors += chunk.toString()));
  const tarExit = new Promise<number | null>((resolve, reject) => {
    tar.on("error", reject);
    tar.on("close", resolve);
  });
  try {
    await consume(tar.stdout);
  } catch (err) {
    tar.kill();
    throw err;
  }
  const code = await tarExit;
  if (code !== 0) throw new Error(`tar of ${what} failed (exit ${code}): ${tarErrors.trim()}`);
}
