// Small pure helpers around the Docker Engine API: error decoding, progress streams, image references and the
// multiplexed log framing. Kept apart from the driver so they can be tested without a daemon.
import { Readable } from "node:stream";
import type Dockerode from "dockerode";
import type { LogChunk } from "./runtime.js";

/** The HTTP status dockerode attaches to a failed call, if any. */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null || !("statusCode" in err)) return undefined;
  return typeof err.statusCode === "number" ? err.statusCode : undefined;
}

/** The daemon's own message ("... port is already allocated") rather than dockerode's "(HTTP code 500) ..." wrapper. */
export function dockerMessage(err: unknown): string {
  if (typeof err === "object" && err !== null && "json" in err) {
    const body = err.json;
    if (typeof body === "object" && body !== null && "message" in body && typeof body.message === "string") {
      return body.message;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/** Drains a docker JSON progress stream (pull, import), failing on the first message that reports an error. */
export function followJsonStream(docker: Dockerode, stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: string | undefined;
    docker.modem.followProgress(
      stream,
      (err) => (err ? reject(err) : failure !== undefined ? reject(new Error(failure)) : resolve()),
      (event: unknown) => (failure ??= progressError(event)),
    );
  });
}

function progressError(event: unknown): string | undefined {
  if (typeof event !== "object" || event === null || !("error" in event)) return undefined;
  return String(event.error);
}

/** "flotilla/busybox:latest" -> repo "flotilla/busybox", tag "latest"; a ':' before the last '/' is a registry port. */
export function splitTag(image: string): { repo: string; tag: string } {
  const colon = image.lastIndexOf(":");
  if (colon < 0 || colon < image.lastIndexOf("/")) return { repo: image, tag: "latest" };
  return { repo: image.slice(0, colon), tag: image.slice(colon + 1) };
}

const FRAME_HEADER_BYTES = 8;

/**
 * Splits a complete multiplexed log body (what a non-follow logs call returns) into chunks. Each frame is an
 * 8-byte header (stream type, 3 zero bytes, big-endian length) and its payload. A body that does not start with a
 * valid header came from a TTY container and is all stdout.
 */
export function demuxLogBuffer(body: Buffer): LogChunk[] {
  const chunks: LogChunk[] = [];
  let at = 0;
  while (at + FRAME_HEADER_BYTES <= body.length) {
    const type = body[at];
    if (type !== 0 && type !== 1 && type !== 2) break;
    const length = body.readUInt32BE(at + 4);
    const data = body.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    chunks.push({ stream: type === 2 ? "stderr" : "stdout", data });
    at += FRAME_HEADER_BYTES + length;
  }
  if (at < body.length) chunks.push({ stream: "stdout", data: body.subarray(at) });
  return chunks;
}

/** NodeJS.ReadableStream has no destroy(); the HTTP responses dockerode hands out are Readables that do. */
export function destroyStream(stream: NodeJS.ReadableStream): void {
  if (stream instanceof Readable) stream.destroy();
  else stream.pause();
}
