// The userspace proxy's backend choice (pure): round-robin, least-connections, ClientIP affinity, retries.
import { describe, expect, it } from "vitest";
import { backendKey, Balancer, type BalancerOptions } from "../../src/net/balancer.js";
import type { Backend } from "../../src/net/types.js";

function backend(n: number): Backend {
  return { address: "10.1.0.1", port: 8000 + n, pod: `default/web-${n}`, node: "n1" };
}

const [A, B, C, D] = [backend(0), backend(1), backend(2), backend(3)];
const keyOf = (b: Backend | undefined): string | undefined => (b === undefined ? undefined : backendKey(b));

function balancer(options: Partial<BalancerOptions>, backends: Backend[]): Balancer {
  const b = new Balancer({ mode: "round-robin", affinity: "None", ...options });
  b.setBackends(backends);
  return b;
}

function picks(b: Balancer, n: number, client = "10.9.0.1"): string[] {
  return Array.from({ length: n }, () => keyOf(b.pick(client))!);
}

describe("backendKey", () => {
  it("is address:port, with brackets for IPv6", () => {
    expect(backendKey(A!)).toBe("10.1.0.1:8000");
    expect(backendKey({ address: "fd00::1", port: 80 })).toBe("[fd00::1]:80");
  });
});

describe("untried", () => {
  it("counts the current backends not yet tried, ignoring tried keys no longer in the list", () => {
    const b = balancer({}, [A!, B!, C!]);
    expect(b.untried(new Set())).toBe(3);
    expect(b.untried(new Set([backendKey(A!), backendKey(D!)]))).toBe(2);
    expect(b.untried(new Set([A!, B!, C!].map(backendKey)))).toBe(0);
    b.setBackends([]);
    expect(b.untried(new Set())).toBe(0);
  });
});

describe("round-robin", () => {
  it("walks the list in order, so N picks hit each of N backends once", () => {
    const b = balancer({}, [A!, B!, C!]);
    expect(picks(b, 6)).toEqual([A, B, C, A, B, C].map(backendKey));
  });

  it("skips the backends already tried and gives up when none is left", () => {
    const b = balancer({}, [A!, B!, C!]);
    expect(keyOf(b.pick("c", new Set([backendKey(A!)])))).toBe(backendKey(B!));
    expect(b.pick("c", new Set([A, B, C].map((x) => backendKey(x!))))).toBeUndefined();
  });

  it("has nothing to give with no backends", () => {
    expect(balancer({}, []).pick("c")).toBeUndefined();
  });

  it("keeps its place across a list change and reaches new backends", () => {
    const b = balancer({}, [A!, B!, C!]);
    picks(b, 2); // A, B
    b.setBackends([A!, B!, C!, D!]);
    expect(picks(b, 4)).toEqual([C, D, A, B].map(backendKey));
    b.setBackends([A!]);
    expect(picks(b, 2)).toEqual([A, A].map(backendKey));
  });

  it("never returns a backend that left the list", () => {
    const b = balancer({}, [A!, B!, C!]);
    b.setBackends([A!, C!]);
    expect(new Set(picks(b, 10))).toEqual(new Set([A, C].map(backendKey)));
    expect(b.has(backendKey(B!))).toBe(false);
  });

  it("drops duplicate backends", () => {
    const b = balancer({}, [A!, A!, B!]);
    expect(b.size).toBe(2);
    expect(picks(b, 4)).toEqual([A, B, A, B].map(backendKey));
  });
});

describe("least-connections", () => {
  it("picks the backend with the fewest open connections", () => {
    const b = balancer({ mode: "least-connections" }, [A!, B!, C!]);
    b.connectionOpened(backendKey(A!));
    b.connectionOpened(backendKey(A!));
    b.connectionOpened(backendKey(B!));
    expect(keyOf(b.pick("c"))).toBe(backendKey(C!));
    b.connectionOpened(backendKey(C!));
    b.connectionOpened(backendKey(C!));
    expect(keyOf(b.pick("c"))).toBe(backendKey(B!));
  });

  it("rotates among equally loaded backends", () => {
    const b = balancer({ mode: "least-connections" }, [A!, B!, C!]);
    expect(picks(b, 6)).toEqual([A, B, C, A, B, C].map(backendKey));
  });

  it("skips tried backends even when they are the least loaded", () => {
    const b = balancer({ mode: "least-connections" }, [A!, B!]);
    b.connectionOpened(backendKey(B!));
    expect(keyOf(b.pick("c", new Set([backendKey(A!)])))).toBe(backendKey(B!));
  });

  it("counts each open once and forgets a backend at zero", () => {
    const b = balancer({ mode: "least-connections" }, [A!]);
    b.connectionOpened(backendKey(A!));
    b.connectionOpened(backendKey(A!));
    b.connectionClosed(backendKey(A!));
    expect(b.activeConnections(backendKey(A!))).toBe(1);
    b.connectionClosed(backendKey(A!));
    b.connectionClosed(backendKey(A!)); // an extra close does not go negative
    expect(b.activeConnections(backendKey(A!))).toBe(0);
  });

  it("keeps the load of a draining backend, so it is accurate if the backend comes back", () => {
    const b = balancer({ mode: "least-connections" }, [A!, B!]);
    b.connectionOpened(backendKey(A!));
    b.setBackends([B!]);
    b.setBackends([A!, B!]);
    expect(keyOf(b.pick("c"))).toBe(backendKey(B!));
  });
});

describe("ClientIP affinity", () => {
  it("keeps a client on one backend and spreads new clients", () => {
    const b = balancer({ affinity: "ClientIP" }, [A!, B!, C!]);
    expect(picks(b, 3, "10.9.0.1")).toEqual([A, A, A].map(backendKey));
    expect(picks(b, 3, "10.9.0.2")).toEqual([B, B, B].map(backendKey));
    expect(picks(b, 1, "10.9.0.3")).toEqual([backendKey(C!)]);
  });

  it("moves a client whose backend left the list, and keeps it on the new one", () => {
    const b = balancer({ affinity: "ClientIP" }, [A!, B!, C!]);
    picks(b, 1, "x"); // A
    b.setBackends([B!, C!]);
    const moved = picks(b, 3, "x");
    expect(new Set(moved).size).toBe(1);
    expect(moved[0]).not.toBe(backendKey(A!));
  });

  it("moves a client whose backend failed (was tried) and remembers the new one", () => {
    const b = balancer({ affinity: "ClientIP" }, [A!, B!]);
    picks(b, 1, "x"); // A
    expect(keyOf(b.pick("x", new Set([backendKey(A!)])))).toBe(backendKey(B!));
    expect(picks(b, 2, "x")).toEqual([B, B].map(backendKey));
  });

  it("works with least-connections: the client stays even when its backend is the busiest", () => {
    const b = balancer({ mode: "least-connections", affinity: "ClientIP" }, [A!, B!]);
    picks(b, 1, "x"); // A
    b.connectionOpened(backendKey(A!));
    b.connectionOpened(backendKey(A!));
    expect(picks(b, 2, "x")).toEqual([A, A].map(backendKey));
    expect(picks(b, 1, "y")).toEqual([backendKey(B!)]);
  });

  it("forgets everything when affinity is turned off", () => {
    const b = balancer({ affinity: "ClientIP" }, [A!, B!]);
    picks(b, 1, "x"); // A
    b.setAffinity("None");
    expect(picks(b, 2, "x")).toEqual([B, A].map(backendKey));
  });

  it("remembers a bounded number of clients, forgetting the least recently seen", () => {
    const b = balancer({ affinity: "ClientIP", maxAffinityEntries: 2 }, [A!, B!, C!]);
    picks(b, 1, "x"); // A
    picks(b, 1, "y"); // B
    picks(b, 1, "x"); // A again: x is now the most recent
    picks(b, 1, "z"); // C; y is forgotten
    expect(picks(b, 1, "x")).toEqual([backendKey(A!)]);
    expect(picks(b, 1, "y")).toEqual([backendKey(A!)]); // chosen afresh: the cursor is back at A
  });
});
