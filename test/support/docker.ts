// Gives tests a real dockerd, or tells them to skip. Outside CI a machine without Docker skips the docker tests;
// under CI=true an unreachable daemon fails loudly instead, so a broken CI never passes by skipping.
import Dockerode from "dockerode";

const PING_TIMEOUT_MS = 5000;

export async function requireDocker(): Promise<Dockerode | undefined> {
  const docker = new Dockerode();
  try {
    await withTimeout(docker.ping(), PING_TIMEOUT_MS);
    return docker;
  } catch (err) {
    if (process.env.CI === "true") {
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(
        `dockerd does not answer (DOCKER_HOST=${process.env.DOCKER_HOST ?? "unset"}): ${reason}. ` +
          "Run the tests through ../shared/ci/in-netns.sh.",
      );
    }
    return undefined;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
