// The cluster DNS zone as a pure function: one question plus the current services and the cluster domain give the
// records to answer with. The DNS server (dns-server.ts) only moves packets; every naming rule lives here, so it is
// testable without sockets.
//
// The zone (everything below <domain>, compared case-insensitively):
// - <service>.<namespace>.svc.<domain>: A → the clusterIp; SRV → one record per port of the service
// - _<port name>._<tcp|udp>.<service>.<namespace>.svc.<domain>: SRV → the named port, target = the service's name
// - <domain>: SOA
// - names that lead to the above (svc.<domain>, <namespace>.svc.<domain> while the namespace has services,
//   _<tcp|udp>.<service>...): exist, but hold no records
// Existing names asked for a type they lack get NOERROR with no answers; names that do not exist get NXDOMAIN. Both
// carry the zone's SOA in the authority section so resolvers cache the negative answer only briefly (RFC 2308).
// Names outside <domain> are not ours: the caller forwards them.
import type { Answer, Question, SrvAnswer } from "dns-packet";
import type { ServicePortView, ServiceView } from "./types.js";

export const DEFAULT_CLUSTER_DOMAIN = "flotilla.local";

/** Short, so a changed or deleted service is seen within seconds by pods that cache answers. */
export const RECORD_TTL_SECONDS = 5;

/** How long resolvers may cache "no such name / no such record" (the SOA's minimum, RFC 2308). */
export const NEGATIVE_TTL_SECONDS = 5;

/** Spread evenly when several SRV records answer one name (as CoreDNS does); 100 for a single one. */
const SRV_TOTAL_WEIGHT = 100;

export interface ZoneAnswer {
  /** REFUSED only for classes other than IN (and ANY): the zone holds Internet records alone. */
  rcode: "NOERROR" | "NXDOMAIN" | "REFUSED";
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

/** Lower-case, without the trailing dot: the form every comparison in the zone uses. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/\.+$/, "");
}

export function isInDomain(name: string, domain: string): boolean {
  const n = canonicalName(name);
  const d = canonicalName(domain);
  return n === d || n.endsWith(`.${d}`);
}

export function serviceDnsName(service: string, namespace: string, domain: string): string {
  return canonicalName(`${service}.${namespace}.svc.${domain}`);
}

export function srvDnsName(
  portName: string,
  protocol: string,
  service: string,
  namespace: string,
  domain: string,
): string {
  return canonicalName(`_${portName}._${protocol}.${service}.${namespace}.svc.${domain}`);
}

/**
 * The records answering `question`, or undefined when its name is outside the cluster domain (to be forwarded).
 * Answers are owned by the name exactly as asked (resolvers may check that the case matches).
 */
export function answerQuestion(
  question: Question,
  services: readonly ServiceView[],
  domain: string,
): ZoneAnswer | undefined {
  const zone = canonicalName(domain);
  const name = canonicalName(question.name);
  if (!isInDomain(name, zone)) return undefined;

  const soa = soaRecord(zone);
  const result = (rcode: ZoneAnswer["rcode"], answers: Answer[] = [], additionals: Answer[] = []): ZoneAnswer => ({
    rcode,
    answers,
    // A positive answer needs no SOA; negative ones carry it for their cache lifetime.
    authorities: rcode !== "REFUSED" && answers.length === 0 ? [soa] : [],
    additionals,
  });
  const nxdomain = result("NXDOMAIN");
  const nodata = result("NOERROR");

  if (question.class !== undefined && question.class !== "IN" && question.class !== "ANY") return result("REFUSED");
  // A string: dns-packet decodes type 255 as "ANY", which its RecordType does not list.
  const type: string = question.type;
  const wants = (t: string): boolean => type === t || type === "ANY";

  if (name === zone) return wants("SOA") ? result("NOERROR", [{ ...soa, name: question.name }]) : nodata;

  // Labels between the name and the zone, most specific first: [..., "<service>", "<namespace>", "svc"].
  const labels = name.slice(0, -(zone.length + 1)).split(".");
  if (labels.pop() !== "svc") return nxdomain;
  if (labels.length === 0) return nodata; // svc.<domain>

  const namespace = labels[labels.length - 1];
  const inNamespace = services.filter((s) => s.namespace.toLowerCase() === namespace);
  if (labels.length === 1) return inNamespace.length > 0 ? nodata : nxdomain;

  const serviceLabel = labels[labels.length - 2];
  const service = inNamespace.find((s) => s.name.toLowerCase() === serviceLabel);
  if (!service) return nxdomain;
  const target = serviceDnsName(service.name, service.namespace, zone);
  const glue = addressRecords(target, service);

  if (labels.length === 2) {
    const answers: Answer[] = [];
    if (wants("A")) answers.push(...addressRecords(question.name, service));
    if (wants("SRV")) answers.push(...srvRecords(question.name, target, service.ports));
    // The SRV targets' address travels along, saving the client a second query.
    return result("NOERROR", answers, wants("SRV") && answers.length > 0 ? glue : []);
  }

  const protocol = underscored(labels[labels.length - 3]);
  const withProtocol = service.ports.filter((p) => p.name !== "" && p.protocol.toLowerCase() === protocol);
  if (labels.length === 3) return withProtocol.length > 0 ? nodata : nxdomain; // _<proto>.<service>...

  if (labels.length > 4) return nxdomain;
  const portName = underscored(labels[0]);
  const ports = withProtocol.filter((p) => p.name.toLowerCase() === portName);
  if (ports.length === 0) return nxdomain;
  if (!wants("SRV")) return nodata;
  return result("NOERROR", srvRecords(question.name, target, ports), glue);
}

/** The label without its leading underscore, or "" when it has none (so it matches no port or protocol). */
function underscored(label: string): string {
  return label.startsWith("_") ? label.slice(1) : "";
}

function addressRecords(owner: string, service: ServiceView): Answer[] {
  // A service without a virtual IP has no address to give (its name still exists).
  if (service.clusterIp === "") return [];
  return [{ name: owner, type: "A", class: "IN", ttl: RECORD_TTL_SECONDS, data: service.clusterIp }];
}

function srvRecords(owner: string, target: string, ports: readonly ServicePortView[]): SrvAnswer[] {
  const weight = Math.max(1, Math.floor(SRV_TOTAL_WEIGHT / Math.max(1, ports.length)));
  return ports.map((p) => ({
    name: owner,
    type: "SRV",
    class: "IN",
    ttl: RECORD_TTL_SECONDS,
    data: { priority: 0, weight, port: p.port, target },
  }));
}

function soaRecord(zone: string): Answer {
  return {
    name: zone,
    type: "SOA",
    class: "IN",
    ttl: NEGATIVE_TTL_SECONDS,
    data: {
      mname: `ns.dns.${zone}`,
      rname: `hostmaster.${zone}`,
      // The zone is computed on every query and never transferred, so the serial carries no meaning.
      serial: 1,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: NEGATIVE_TTL_SECONDS,
    },
  };
}
