// The wire form of an MvccCommand inside a Raft entry: UTF-8 JSON in which every byte array becomes
// {"$b": "<base64>"}. Commands are small, so JSON's cost is dwarfed by the Raft round trip, and entries stay
// readable in WAL dumps. decode(encode(c)) equals c exactly (fields that are undefined are omitted).
import { MvccError } from "./types.js";
import type { MvccCommand } from "./types.js";

const COMMANDS = ["put", "deleteRange", "txn", "compact", "leaseGrant", "leaseRevoke"];
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function isTagged(v: unknown): v is { $b: string } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && typeof (v as { $b?: unknown }).$b === "string" && Object.keys(v).length === 1;
}

export function encodeCommand(command: MvccCommand): Uint8Array {
  const json = JSON.stringify(command, function (this: Record<string, unknown>, key: string, value: unknown) {
    // `this[key]` is the raw value: a Buffer has already become {type, data} through its toJSON by now.
    const raw = this[key];
    if (raw instanceof Uint8Array) return { $b: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64") };
    return value;
  });
  return encoder.encode(json);
}

export function decodeCommand(data: Uint8Array): MvccCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data), (_key, value: unknown) =>
      isTagged(value) ? new Uint8Array(Buffer.from(value.$b, "base64")) : value,
    );
  } catch (err) {
    throw new MvccError("invalid", `undecodable command: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new MvccError("invalid", "command is not an object");
  const keys = Object.keys(parsed);
  if (keys.length !== 1 || !COMMANDS.includes(keys[0])) throw new MvccError("invalid", `unknown command ${keys.join(",")}`);
  // The store validates every field it reads, so a structurally odd command is rejected there, identically everywhere.
  return parsed as MvccCommand;
}
