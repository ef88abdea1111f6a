// Asks the node's upstream resolver a query the cluster zone does not own, over the transport the client used (a
// UDP client whose answer comes back truncated retries over TCP, and that retry then reaches upstream over TCP too).
// The query is relayed byte for byte except its id: each exchange uses a fresh random id and its own socket (so a
// fresh source port), which keeps concurrent clients apart and makes spoofed replies unlikely to be accepted.
// Never rejects: no reply within the time bound, or any socket error, yields undefined (the caller answers
// SERVFAIL).
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { connect, isIPv6 } from "node:net";
import { FrameReader, framed, HEADER_BYTES, isResponse, readId, withId } from "./dns-wire.js";
import type { DnsAddress } from "./resolv-conf.js";

export interface ForwardOptions {
  upstream: DnsAddress;
  transport: "udp" | "tcp";
  timeoutMs: number;
  /** Ends the exchange early (the server is closing). */
  signal: AbortSignal;
}

/** The upstream's reply to `query`, carrying the query's own id; undefined when there was none in time. */
export function forwardQuery(query: Buffer, o: ForwardOptions): Promise<Buffer | undefined> {
  const clientId = readId(query);
  const upstreamId = randomInt(0x10000);
  const outgoing = withId(query, upstreamId);
  const isReply = (m: Buffer): boolean => m.length >= HEADER_BYTES && readId(m) === upstreamId && isResponse(m);
  const exchange = o.transport === "udp" ? exchangeUdp : exchangeTcp;
  return new Promise((resolve) => {
    let finished = false;
    let cleanup = (): void => {};
    const finish = (reply?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      o.signal.removeEventListener("abort", onAbort);
      cleanup();
      resolve(reply && withId(reply, clientId));
    };
    const onAbort = (): void => finish();
    const timer = setTimeout(finish, o.timeoutMs);
    if (o.signal.aborted) return finish();
    o.signal.addEventListener("abort", onAbort, { once: true });
    cleanup = exchange(outgoing, o.upstream, isReply, finish);
  });
}

type Exchange = (
  outgoing: Buffer,
  upstream: DnsAddress,
  isReply: (m: Buffer) => boolean,
  done: (reply?: Buffer) => void,
) => () => void;

const exchangeUdp: Exchange = (outgoing, upstream, isReply, done) => {
  const socket = createSocket(isIPv6(upstream.address.replace(/%.*$/, "")) ? "udp6" : "udp4");
  // Connected: the kernel drops datagrams from anyone but the upstream, and a closed port fails fast (ICMP).
  socket.on("error", () => done());
  socket.on("message", (m) => {
    if (isReply(m)) done(m);
  });
  socket.connect(upstream.port, upstream.address, () => {
    socket.send(outgoing, (err) => {
      if (err) done();
    });
  });
  return () => {
    try {
      socket.close();
    } catch {
      // already closed after an error
    }
  };
};

const exchangeTcp: Exchange = (outgoing, upstream, isReply, done) => {
  const socket = connect({ host: upstream.address, port: upstream.port });
  const frames = new FrameReader();
  socket.on("error", () => done());
  socket.on("close", () => done());
  socket.on("connect", () => socket.write(framed(outgoing)));
  socket.on("data", (chunk) => {
    const reply = frames.push(chunk).find(isReply);
    if (reply) done(reply);
  });
  return () => socket.destroy();
};
