// `flotilla logs POD [-c CONTAINER] [-f] [--tail N]`: streams a container's output through the master.
import type { ApiClient } from "../../api/client.js";
import type { LogChunk } from "../../gen/flotilla/v1/pod.js";

export function streamLogs(
  client: ApiClient,
  req: { namespace: string; name: string; container: string; follow: boolean; tailLines: number },
  write: (chunk: LogChunk) => void,
): { done: Promise<void>; cancel(): void } {
  const stream = client.stream<LogChunk>((s, md) => s.pods.podLogs(req, md));
  let cancelled = false;
  const done = new Promise<void>((resolve, reject) => {
    stream.on("data", write);
    stream.on("end", resolve);
    stream.on("error", (e) => (cancelled ? resolve() : reject(e)));
  });
  return {
    done,
    cancel() {
      cancelled = true;
      stream.cancel();
    },
  };
}
