// Reads `conntrack -L` output to find flows to service VIPs that were never NATed (sent before the VIP was routed).
// Pure, so the parsing is tested without a kernel; nftables-proxy.ts runs the tool and deletes what this finds.
//
// A line holds the original direction's src=, dst=, sport=, dport= and then the reply direction's, e.g.
//   tcp      6 118 SYN_SENT src=10.0.0.2 dst=10.96.0.15 sport=40123 dport=80 [UNREPLIED] src=10.96.0.15 dst=10.0.0.2 sport=80 dport=40123 mark=0 use=1
// A flow that was DNATed to a backend has the backend as its reply source; one that was never NATed has the VIP.

/**
 * Of `keys` (service-ips elements, "VIP . proto . port"), those that some flow in `listing` was sent to without
 * being NATed: original destination VIP:port, reply source the VIP itself.
 */
export function unnatedServiceKeys(listing: string, keys: ReadonlySet<string>): Set<string> {
  const found = new Set<string>();
  for (const line of listing.split("\n")) {
    const proto = /^(tcp|udp)\s/.exec(line)?.[1];
    if (!proto) continue;
    // In order: the original direction's fields, then the reply's.
    const fields: Record<string, string[]> = { src: [], dst: [], dport: [] };
    for (const [, name, value] of line.matchAll(FIELD)) fields[name!]!.push(value!);
    const [origDst] = fields.dst!;
    const [origDport] = fields.dport!;
    const replySrc = fields.src![1];
    if (!origDst || !origDport || origDst !== replySrc) continue;
    const key = `${origDst} . ${proto} . ${origDport}`;
    if (keys.has(key)) found.add(key);
  }
  return found;
}

const FIELD = /\b(src|dst|dport)=(\S+)/g;
