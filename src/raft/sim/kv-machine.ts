// The simulator's state machine: a map of registers driven by JSON commands (set, cas), each carrying a unique
// client id. It records every applied (index, term, command) for the checkers, and keeps in its own state the
// ordered list of applied command ids, so exactly-once survives snapshots and restarts.
//
// Invariants: apply is deterministic; snapshot() is an image as of the last applied entry; restore() replaces all
// state (records start again from the snapshot's index: they are this incarnation's applications only).
import type { StateMachine } from "../storage.js";

/** What a client asks for; the cluster adds a unique id. */
export type KvRequest = { op: "set"; key: string; value: string } | { op: "cas"; key: string; expect: string | null; value: string };

export type KvCommand = KvRequest & { id: string };

export interface AppliedRecord {
  index: number;
  term: number;
  command: string;
}

export interface KvResult {
  index: number;
  term: number;
  ok: boolean;
}

interface KvImage {
  registers: Record<string, string>;
  ids: string[];
  lastIndex: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export class KvMachine implements StateMachine {
  private registers = new Map<string, string>();
  /** Command ids in the order applied, snapshot included. */
  ids: string[] = [];
  lastIndex = 0;
  /** This incarnation's applications, in order. */
  readonly records: AppliedRecord[] = [];

  apply(entry: { index: number; term: number; data: Uint8Array }): KvResult {
    const text = decoder.decode(entry.data);
    this.records.push({ index: entry.index, term: entry.term, command: text });
    if (entry.index <= this.lastIndex) throw new Error(`applied ${entry.index} after ${this.lastIndex}`);
    this.lastIndex = entry.index;
    const command = JSON.parse(text) as KvCommand;
    this.ids.push(command.id);
    return { index: entry.index, term: entry.term, ok: this.execute(command) };
  }

  get(key: string): string | undefined {
    return this.registers.get(key);
  }

  async snapshot(): Promise<Uint8Array> {
    const image: KvImage = { registers: Object.fromEntries(this.registers), ids: this.ids.slice(), lastIndex: this.lastIndex };
    return encoder.encode(JSON.stringify(image));
  }

  async restore(data: Uint8Array): Promise<void> {
    const image = JSON.parse(decoder.decode(data)) as KvImage;
    this.registers = new Map(Object.entries(image.registers));
    this.ids = image.ids.slice();
    this.lastIndex = image.lastIndex;
  }

  private execute(command: KvCommand): boolean {
    if (command.op === "set") {
      this.registers.set(command.key, command.value);
      return true;
    }
    const current = this.registers.get(command.key) ?? null;
    if (current !== command.expect) return false;
    this.registers.set(command.key, command.value);
    return true;
  }
}
