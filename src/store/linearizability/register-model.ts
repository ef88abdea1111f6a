// A sequential specification of one register (a key that holds a value or is absent), as the linearizability
// checker replays it: put(v) -> ok; get -> the value; cas(expect, v) -> ok (and writes) iff the value equals expect.
// Invariants: `step` is pure and deterministic; it returns the new state, or undefined when the operation's
// recorded output is impossible in that state. An ambiguous operation (no output) is always possible: it applies
// its effect as the state dictates (a cas with an unknown outcome writes iff the comparison holds). "It never
// happened" needs no special case: the checker gives ambiguous operations an infinite return, so they can be
// linearized after every completed operation, where their effect is invisible.
import type { OpInput, OpKind, OpOutput, Value } from "./history.js";

export interface Model<S> {
  init(): S;
  step(state: S, op: OpKind, input: OpInput, output: OpOutput | undefined): S | undefined;
  /** A string that is equal for equal states (the search memoizes on it). */
  key(state: S): string;
  describe(state: S): string;
}

function stepPut(input: OpInput, output: OpOutput | undefined): Value | undefined {
  // A put that answered "not ok" is not produced by the workload; treat it as impossible rather than guess.
  if (output !== undefined && output.ok === false) return undefined;
  return input.value ?? null;
}

function stepCas(state: Value, input: OpInput, output: OpOutput | undefined): Value | undefined {
  const holds = input.expect !== undefined && state === input.expect;
  if (output === undefined) return holds ? (input.value ?? null) : state;
  if (output.ok) return holds ? (input.value ?? null) : undefined;
  return holds ? undefined : state;
}

export const registerModel: Model<Value> = {
  init: () => null,
  step(state, op, input, output) {
    switch (op) {
      case "put":
        return stepPut(input, output);
      case "get":
        if (output === undefined) return state;
        return output.value === state ? state : undefined;
      case "cas":
        return stepCas(state, input, output);
    }
  },
  key: (state) => (state === null ? "\u0000" : `=${state}`),
  describe: (state) => (state === null ? "absent" : JSON.stringify(state)),
};
