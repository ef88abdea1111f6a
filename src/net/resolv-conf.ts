// resolv.conf both ways: the file a container gets, which sends its lookups to the node's cluster DNS and makes
// short service names work, and reading the host's file, to find the upstream resolver that the cluster DNS
// forwards every other name to.
//
// Short names are the client's business, not the server's: the container's resolver appends each search domain in
// turn (web → web.<ns>.svc.<domain>, web.other → web.other.svc.<domain>) before trying the name as given, because
// ndots:5 makes it treat every name with fewer than five dots as relative. The server only ever sees full names.
import { isIP } from "node:net";
import { canonicalName, DEFAULT_CLUSTER_DOMAIN } from "./dns-records.js";

/** What a resolver takes from resolv.conf (the parts Flotilla uses). */
export interface ResolvConf {
  nameservers: string[];
  search: string[];
  /** Names with fewer dots than this are tried with the search domains first (glibc default 1, at most 15). */
  ndots: number;
}

export interface DnsAddress {
  address: string;
  port: number;
}

export interface ContainerResolvConfOptions {
  /** The node's cluster DNS address. resolv.conf has no port: the server must listen on 53 there. */
  nameserver: string;
  /** The pod's namespace: its services are reachable by their bare name. */
  namespace: string;
  domain?: string;
}

/** Kubernetes' value: <service>.<namespace>.svc.<domain> has four dots, so even that goes through the search list. */
export const CONTAINER_NDOTS = 5;

const GLIBC_DEFAULT_NDOTS = 1;
const GLIBC_MAX_NDOTS = 15;
const DNS_PORT = 53;

/** What a pod's resolver is: the node's DNS, its namespace's search list, Kubernetes' ndots. */
export function containerResolver(o: ContainerResolvConfOptions): { nameservers: string[]; search: string[]; options: string[] } {
  const domain = canonicalName(o.domain ?? DEFAULT_CLUSTER_DOMAIN);
  const namespace = canonicalName(o.namespace);
  return { nameservers: [o.nameserver], search: [`${namespace}.svc.${domain}`, `svc.${domain}`, domain], options: [`ndots:${CONTAINER_NDOTS}`] };
}

export function containerResolvConf(o: ContainerResolvConfOptions): string {
  const r = containerResolver(o);
  return [...r.nameservers.map((n) => `nameserver ${n}`), `search ${r.search.join(" ")}`, `options ${r.options.join(" ")}`, ""].join("\n");
}

/** Parses like glibc: comments start with # or ;, the last of `search`/`domain` wins, unknown lines are ignored. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], ndots: GLIBC_DEFAULT_NDOTS };
  for (const raw of text.split("\n")) {
    const [keyword, ...args] = raw.replace(/[#;].*$/, "").trim().split(/\s+/);
    if (keyword === "nameserver" && args[0]) conf.nameservers.push(args[0]);
    else if (keyword === "search") conf.search = args.filter((a) => a !== "");
    else if (keyword === "domain" && args[0]) conf.search = [args[0]];
    else if (keyword === "options") {
      for (const option of args) {
        const ndots = /^ndots:(\d+)$/.exec(option);
        if (ndots) conf.ndots = Math.min(Number(ndots[1]), GLIBC_MAX_NDOTS);
      }
    }
  }
  return conf;
}

/**
 * The first usable nameserver of the host's resolv.conf, as the cluster DNS's upstream. Addresses in `exclude` (the
 * cluster DNS's own) are skipped: forwarding to ourselves would loop until every query timed out.
 */
export function upstreamFromResolvConf(text: string, exclude: readonly string[] = []): DnsAddress | undefined {
  const usable = (a: string): boolean => isIP(a.replace(/%.*$/, "")) !== 0 && !exclude.includes(a);
  const address = parseResolvConf(text).nameservers.find(usable);
  return address === undefined ? undefined : { address, port: DNS_PORT };
}
