// The randomized simulator over seeds 1..500 (each failing seed reported by number, with how to replay it), and
// determinism: one seed run twice gives the same trace hash.
import { describe, expect, it } from "vitest";
import { runSeed } from "../../../src/raft/sim/run.js";

const STEPS = Number(process.env.SIM_STEPS ?? 200);

async function runRange(from: number, to: number): Promise<string[]> {
  const failures: string[] = [];
  for (let seed = from; seed <= to; seed++) {
    try {
      await runSeed(seed, { steps: STEPS });
    } catch (e) {
      const first = (e instanceof Error ? e.message : String(e)).split("\n")[0];
      failures.push(`${first} — replay: node dist/src/raft/sim/main.js --seed ${seed} --steps ${STEPS} --verbose`);
    }
  }
  return failures;
}

describe("raft simulator", () => {
  for (let block = 0; block < 5; block++) {
    const from = block * 100 + 1;
    it(`seeds ${from}..${from + 99} keep every safety and liveness property`, async () => {
      expect(await runRange(from, from + 99)).toEqual([]);
    }, 120_000);
  }

  // The outcome of a run: its trace hash, ticks and acknowledgements, or (for a failing seed) its full report.
  const outcome = (seed: number): Promise<string> =>
    runSeed(seed, { steps: STEPS }).then(
      (r) => `${r.hash} ${r.ticks} ${r.acked}`,
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );

  it("replays a seed exactly (same trace hash twice)", async () => {
    for (const seed of [1, 42]) expect(await outcome(seed)).toBe(await outcome(seed));
    expect(await outcome(1)).not.toBe(await outcome(2));
  });
});
