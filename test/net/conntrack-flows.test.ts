import { describe, expect, it } from "vitest";
import { unnatedServiceKeys } from "../../src/net/conntrack-flows.js";

// Lines as conntrack-tools 1.4.7 prints them (`conntrack -L`).
const LISTING = [
  // A SYN sent to a VIP before it was routed: never NATed, the reply would come from the VIP itself.
  "tcp      6 118 SYN_SENT src=10.0.0.2 dst=10.96.0.15 sport=40123 dport=80 [UNREPLIED] src=10.96.0.15 dst=10.0.0.2 sport=80 dport=40123 mark=0 use=1",
  // A connection DNATed to a backend: its reply comes from the backend.
  "tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=10.96.0.10 sport=50000 dport=80 src=172.17.0.2 dst=10.0.0.2 sport=8080 dport=50000 [ASSURED] mark=0 use=1",
  "udp      17 29 src=10.0.0.2 dst=10.96.0.53 sport=41000 dport=53 [UNREPLIED] src=10.96.0.53 dst=10.0.0.2 sport=53 dport=41000 mark=0 use=1",
  "icmp     1 29 src=10.0.0.2 dst=10.96.0.15 type=8 code=0 id=7 src=10.96.0.15 dst=10.0.0.2 type=0 code=0 id=7 mark=0 use=1",
  // Un-NATed, but to a VIP:port not asked about.
  "tcp      6 100 SYN_SENT src=10.0.0.2 dst=10.96.0.20 sport=40124 dport=443 [UNREPLIED] src=10.96.0.20 dst=10.0.0.2 sport=443 dport=40124 mark=0 use=1",
  "",
].join("\n");

describe("unnatedServiceKeys", () => {
  it("finds the asked VIP:ports that a flow reached without NAT, by protocol and port", () => {
    const keys = new Set(["10.96.0.15 . tcp . 80", "10.96.0.10 . tcp . 80", "10.96.0.53 . udp . 53", "10.96.0.53 . tcp . 53", "10.96.0.15 . tcp . 81"]);
    expect([...unnatedServiceKeys(LISTING, keys)].sort()).toEqual(["10.96.0.15 . tcp . 80", "10.96.0.53 . udp . 53"]);
  });

  it("finds nothing in an empty table or for keys no flow reached", () => {
    expect(unnatedServiceKeys("", new Set(["10.96.0.15 . tcp . 80"])).size).toBe(0);
    expect(unnatedServiceKeys(LISTING, new Set(["10.96.0.99 . tcp . 80"])).size).toBe(0);
  });
});
