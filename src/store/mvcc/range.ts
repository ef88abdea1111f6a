// Range reads over the key index at one revision, with etcd's post-processing (etcdserver/apply Range): the index
// counts every key alive at the revision; mod/create filters prune afterwards (so, as in etcd, `count` ignores
// them); a sort other than ascending-by-key, or any filter, makes the whole range fetched before truncating to
// `limit`; otherwise only limit + 1 versions are materialised, the extra one deciding `more`.
import type { Bounds } from "./bytes.js";
import { compareBytes } from "./bytes.js";
import type { KeyHistory, KeyIndex, Version } from "./key-index.js";
import type { KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget } from "./types.js";
import { MvccError } from "./types.js";

interface Hit {
  h: KeyHistory;
  v: Version;
}

function needsFullFetch(req: RangeRequest): boolean {
  const order = req.sortOrder ?? "none";
  return (
    (order !== "none" && !(order === "ascend" && (req.sortTarget ?? "key") === "key")) ||
    !!req.minModRevision ||
    !!req.maxModRevision ||
    !!req.minCreateRevision ||
    !!req.maxCreateRevision
  );
}

function collect(index: KeyIndex, b: Bounds, rev: number, fetch: number, countOnly: boolean): { hits: Hit[]; count: number } {
  const hits: Hit[] = [];
  let count = 0;
  index.forEach(b, (h) => {
    const v = h.at(rev);
    if (v === undefined) return;
    count++;
    if (!countOnly && (fetch === 0 || hits.length < fetch)) hits.push({ h, v });
  });
  return { hits, count };
}

function prune(hits: Hit[], req: RangeRequest): Hit[] {
  const { minModRevision: minMod, maxModRevision: maxMod, minCreateRevision: minCreate, maxCreateRevision: maxCreate } = req;
  if (!minMod && !maxMod && !minCreate && !maxCreate) return hits;
  return hits.filter(
    ({ v }) =>
      !(maxMod && v.mod > maxMod) &&
      !(minMod && v.mod < minMod) &&
      !(maxCreate && v.create > maxCreate) &&
      !(minCreate && v.create < minCreate),
  );
}

function compareBy(target: SortTarget): (a: Hit, b: Hit) => number {
  switch (target) {
    case "key":
      return (a, b) => (a.h.key < b.h.key ? -1 : a.h.key > b.h.key ? 1 : 0);
    case "version":
      return (a, b) => a.v.version - b.v.version;
    case "create":
      return (a, b) => a.v.create - b.v.create;
    case "mod":
      return (a, b) => a.v.mod - b.v.mod;
    case "value":
      return (a, b) => compareBytes(a.v.value, b.v.value);
    default:
      throw new MvccError("invalid", `unknown sort target ${String(target)}`);
  }
}

/** etcd: a non-key target with order none sorts ascending; key ascending is the index order already. */
function sortHits(hits: Hit[], order: SortOrder, target: SortTarget): void {
  if (target !== "key" && order === "none") order = "ascend";
  else if (target === "key" && order === "ascend") order = "none";
  if (order === "none") return;
  if (order !== "descend" && order !== "ascend") throw new MvccError("invalid", `unknown sort order ${String(order)}`);
  const cmp = compareBy(target);
  // Array.prototype.sort is stable, so ties keep key order: deterministic on every replica.
  hits.sort(order === "ascend" ? cmp : (a, b) => cmp(b, a));
}

/**
 * Reads [b] as of revision `rev` (already validated against compaction and the current revision).
 * `headerRev` is what the response reports: the store's revision, not the one read (as etcd's RangeResult.Rev).
 */
export function rangeIndex(index: KeyIndex, b: Bounds, req: RangeRequest, rev: number, headerRev: number): RangeResponse {
  const limit = req.limit && req.limit > 0 ? req.limit : 0;
  const full = needsFullFetch(req);
  const fetch = full || limit === 0 ? 0 : limit + 1;
  const collected = collect(index, b, rev, fetch, !!req.countOnly);
  let hits = prune(collected.hits, req);
  sortHits(hits, req.sortOrder ?? "none", req.sortTarget ?? "key");
  let more = false;
  if (limit > 0 && hits.length > limit) {
    hits = hits.slice(0, limit);
    more = true;
  }
  const kvs: KeyValue[] = hits.map(({ h, v }) => h.toKeyValue(v, !!req.keysOnly));
  return { header: { revision: headerRev }, kvs, more, count: collected.count };
}
