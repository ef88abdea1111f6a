// What the replicated store puts in Raft entries: an MVCC command, or a lease renewal. Renewals are replicated
// (not kept on the leader alone) so that a keep-alive sent to any master counts, and every member knows each
// lease's deadline; the leader alone acts on expiry, by proposing a revoke.
import { decodeCommand, encodeCommand } from "../mvcc/codec.js";
import type { MvccCommand } from "../mvcc/types.js";

const MVCC = 0;
const LEASE_RENEW = 1;

export type ReplicatedCommand = { mvcc: MvccCommand } | { leaseRenew: { id: number } };

export function encodeReplicated(command: ReplicatedCommand): Uint8Array {
  if ("mvcc" in command) {
    const body = encodeCommand(command.mvcc);
    const out = new Uint8Array(body.length + 1);
    out[0] = MVCC;
    out.set(body, 1);
    return out;
  }
  return new TextEncoder().encode(`\u0001${command.leaseRenew.id}`);
}

export function decodeReplicated(data: Uint8Array): ReplicatedCommand {
  if (data[0] === MVCC) return { mvcc: decodeCommand(data.subarray(1)) };
  if (data[0] === LEASE_RENEW) return { leaseRenew: { id: Number(new TextDecoder().decode(data.subarray(1))) } };
  throw new Error(`unknown replicated command kind ${data[0]}`);
}
