// DNS message handling below the zone's logic, shared by the cluster DNS server and its forwarder: reading header
// fields of raw (possibly malformed) packets, building replies, fitting them into a UDP datagram, and the two-byte
// length framing of DNS over TCP (RFC 1035 §4.2.2).
import { encode, type Answer, type DecodedPacket, type Packet, type Question } from "dns-packet";

export const HEADER_BYTES = 12;

/** A UDP reply may be at most this large unless the query says otherwise through EDNS (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_LIMIT = 512;

/**
 * The most this server sends in one datagram, whatever a client advertises; also what it advertises itself. Pods
 * reach the node's DNS without crossing a real network, so fragmentation (the reason for 1232 elsewhere) is moot.
 */
export const MAX_UDP_PAYLOAD = 4096;

/** A TCP message's length prefix is 16 bits. */
export const MAX_TCP_MESSAGE = 0xffff;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = keyof typeof RCODE;

const QR = 1 << 15;
const AA = 1 << 10;
const TC = 1 << 9;
const RD = 1 << 8;
const RA = 1 << 7;
const OPCODE_MASK = 0xf << 11;

export interface ReplyFlags {
  rcode: Rcode;
  /** Set for answers from the cluster zone, which this server owns. */
  authoritative: boolean;
  /** Set when an upstream is configured: recursion (by forwarding) is available. */
  recursionAvailable: boolean;
}

export function readId(message: Buffer): number {
  return message.readUInt16BE(0);
}

/** A copy of `message` carrying `id`: the forwarder swaps ids so clients cannot collide or spoof each other. */
export function withId(message: Buffer, id: number): Buffer {
  const copy = Buffer.from(message);
  copy.writeUInt16BE(id, 0);
  return copy;
}

export function isResponse(message: Buffer): boolean {
  return (message.readUInt16BE(2) & QR) !== 0;
}

/** The opcode (0 = standard query) of a raw message at least a header long. */
export function opcodeOf(message: Buffer): number {
  return (message.readUInt16BE(2) & OPCODE_MASK) >> 11;
}

function replyFlagBits(queryFlags: number, f: ReplyFlags): number {
  return (
    (queryFlags & (OPCODE_MASK | RD)) | (f.authoritative ? AA : 0) | (f.recursionAvailable ? RA : 0) | RCODE[f.rcode]
  );
}

/**
 * A reply that is only a header (no sections), for queries too broken to decode or to echo. It is built by hand
 * because encoding anything of such a query could itself fail.
 */
export function headerOnlyReply(query: Buffer, f: ReplyFlags): Buffer {
  const reply = Buffer.alloc(HEADER_BYTES);
  reply.writeUInt16BE(readId(query), 0);
  reply.writeUInt16BE(QR | replyFlagBits(query.readUInt16BE(2), f), 2);
  return reply;
}

/** The EDNS OPT record of a query, if it has one (RFC 6891). */
function ednsOf(query: DecodedPacket): Answer | undefined {
  return query.additionals?.find((a) => a.type === "OPT");
}

/** How large a UDP reply to `query` may be: 512 bytes, or what its EDNS record advertises (within our bound). */
export function udpLimit(query: DecodedPacket): number {
  const opt = ednsOf(query);
  const advertised = opt?.type === "OPT" ? opt.udpPayloadSize : 0;
  return Math.min(Math.max(advertised, CLASSIC_UDP_LIMIT), MAX_UDP_PAYLOAD);
}

export interface ReplyContent {
  answers?: Answer[];
  authorities?: Answer[];
  additionals?: Answer[];
}

/** The reply to a decoded query: its id and question echoed, and an OPT record when the query had one. */
export function buildReply(query: DecodedPacket, f: ReplyFlags, content: ReplyContent = {}): Packet {
  const additionals = [...(content.additionals ?? [])];
  if (ednsOf(query)) {
    additionals.push({
      name: ".",
      type: "OPT",
      udpPayloadSize: MAX_UDP_PAYLOAD,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options: [],
    });
  }
  return {
    type: "response",
    id: query.id ?? 0,
    flags: replyFlagBits(query.flags ?? 0, f),
    questions: (query.questions ?? []).map((q: Question) => ({ name: q.name, type: q.type, class: q.class })),
    answers: content.answers ?? [],
    authorities: content.authorities ?? [],
    additionals,
  };
}

/**
 * The encoded reply, or when it exceeds `limit` bytes, the same header and question with TC set and no records
 * but the OPT: the client then asks again over TCP (RFC 2181 §9 - a partial RRset would be worse than none).
 */
export function encodeWithin(reply: Packet, limit: number): Buffer {
  const full = encode(reply);
  if (full.length <= limit) return full;
  return encode({
    ...reply,
    flags: (reply.flags ?? 0) | TC,
    answers: [],
    authorities: [],
    additionals: (reply.additionals ?? []).filter((a) => a.type === "OPT"),
  });
}

/** A message with its TCP length prefix. */
export function framed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}

/** Reassembles length-prefixed messages from a TCP byte stream, however it was chunked. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Adds received bytes; returns the messages they complete, in order. */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: Buffer[] = [];
    while (this.pending.length >= 2) {
      const end = 2 + this.pending.readUInt16BE(0);
      if (this.pending.length < end) break;
      messages.push(this.pending.subarray(2, end));
      this.pending = this.pending.subarray(end);
    }
    return messages;
  }
}
