// The simulator's command line: runs seeds one after another and reports each failure with how to replay it.
//
//   node dist/src/raft/sim/main.js --seeds N [--from S] [--seed S] [--steps K] [--verbose] [--trace]
//
// Exit codes: 0 all passed; 1 a safety violation; 2 a liveness failure; 3 a crash (exception); 64 bad usage.
import { parseArgs } from "node:util";
import { LivenessFailure, runSeed, SafetyViolation } from "./run.js";

const EXIT = { safety: 1, liveness: 2, crash: 3, usage: 64 } as const;
let current = 0;

function kindOf(e: unknown): keyof typeof EXIT {
  if (e instanceof SafetyViolation) return "safety";
  if (e instanceof LivenessFailure) return "liveness";
  return "crash";
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seeds: { type: "string", default: "100" },
      from: { type: "string", default: "1" },
      seed: { type: "string" },
      steps: { type: "string" },
      verbose: { type: "boolean", default: false },
      trace: { type: "boolean", default: false },
    },
  });
  const first = Number(values.seed ?? values.from);
  const count = values.seed !== undefined ? 1 : Number(values.seeds);
  const steps = values.steps !== undefined ? Number(values.steps) : undefined;
  if (!Number.isInteger(first) || !Number.isInteger(count) || count < 1 || (steps !== undefined && !(steps > 0))) {
    console.error("usage: main.js --seeds N [--from S] [--seed S] [--steps K] [--verbose] [--trace]");
    return EXIT.usage;
  }
  // An awaited promise that never settles empties the event loop (exit 13): a deadlock in the driver or harness.
  process.on("exit", (code) => {
    if (code === 13) console.log(`FAIL crash: seed ${current}: hang (a promise never settled)\n  replay: node dist/src/raft/sim/main.js --seed ${current} --verbose`);
  });
  let passed = 0;
  let worst = 0;
  const started = performance.now();
  for (let seed = first; seed < first + count; seed++) {
    current = seed;
    try {
      await runSeed(seed, { steps, verbose: values.verbose || values.trace, traceMessages: values.trace });
      passed++;
    } catch (e) {
      const kind = kindOf(e);
      worst = worst || EXIT[kind];
      console.log(`FAIL ${kind}: ${e instanceof Error ? e.message : String(e)}`);
      console.log(`  replay: node dist/src/raft/sim/main.js --seed ${seed} --verbose${steps ? ` --steps ${steps}` : ""}`);
    }
    const done = seed - first + 1;
    if (!values.verbose && (done % 50 === 0 || done === count)) {
      const rate = done / ((performance.now() - started) / 1000);
      console.log(`${done}/${count} seeds (${rate.toFixed(1)} seeds/s)`);
    }
  }
  console.log(`${passed} seeds passed, ${count - passed} failed`);
  return worst;
}

process.exitCode = await main();
