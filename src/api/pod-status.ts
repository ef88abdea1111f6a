// Reading a pod's state the way kubectl shows it. Shared by the controllers and the CLI.
import type { Pod } from "../gen/flotilla/v1/pod.js";

export function isPodReady(pod: Pod): boolean {
  return pod.status?.conditions.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

export function isPodTerminal(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === "Succeeded" || phase === "Failed";
}

/** kubectl's STATUS column: a waiting or terminated reason where there is one, else the phase. */
export function displayStatus(pod: Pod): string {
  const st = pod.status;
  if (!st) return "Pending";
  for (const c of st.containerStatuses) {
    if (c.state?.waiting?.reason && c.state.waiting.reason !== "ContainerCreating") return c.state.waiting.reason;
    if (c.state?.terminated && st.phase === "Running") return c.state.terminated.reason || "Terminated";
  }
  if (st.phase === "Pending" && pod.spec?.nodeName) {
    return st.containerStatuses.some((c) => c.state?.waiting) ? "ContainerCreating" : "Pending";
  }
  if (st.reason && st.phase !== "Running") return st.reason;
  return st.phase || "Pending";
}
