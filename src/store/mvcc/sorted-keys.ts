// An ordered set of keys (internal latin1 strings, so `<` is bytewise order): a list of sorted chunks, the flat
// cousin of etcd's btree. Lookup is a binary search over chunk heads then within one chunk (O(log n)); insert and
// delete move at most one chunk's elements (bounded by MAX_CHUNK), so 100k random inserts stay fast where a
// single sorted array would memmove half the keys each time.
//
// Invariants: every chunk is non-empty and sorted; chunk i's last key < chunk i+1's first key; no duplicates.

const MAX_CHUNK = 1024;

function lowerBound(arr: string[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SortedKeys {
  private chunks: string[][] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The chunk that holds key or would hold it: the last whose head is <= key (the first if none is). */
  private chunkFor(key: string): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.chunks[mid][0] <= key) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Adds key; false if it was present. */
  insert(key: string): boolean {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.count = 1;
      return true;
    }
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci];
    // Appending in key order (the common case for generated keys) skips the search.
    const pos = chunk[chunk.length - 1] < key ? chunk.length : lowerBound(chunk, key);
    if (chunk[pos] === key) return false;
    chunk.splice(pos, 0, key);
    this.count++;
    if (chunk.length > MAX_CHUNK) this.chunks.splice(ci + 1, 0, chunk.splice(chunk.length >>> 1));
    return true;
  }

  /** Removes key; false if it was absent. */
  delete(key: string): boolean {
    if (this.chunks.length === 0) return false;
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci];
    const pos = lowerBound(chunk, key);
    if (chunk[pos] !== key) return false;
    chunk.splice(pos, 1);
    this.count--;
    if (chunk.length === 0) this.chunks.splice(ci, 1);
    return true;
  }

  /** Calls fn for each key in [start, end) in order (end undefined: to the last key); fn returning false stops. */
  forEach(start: string, end: string | undefined, fn: (key: string) => boolean | void): void {
    if (this.chunks.length === 0) return;
    let ci = this.chunkFor(start);
    let pos = lowerBound(this.chunks[ci], start);
    for (; ci < this.chunks.length; ci++, pos = 0) {
      const chunk = this.chunks[ci];
      for (; pos < chunk.length; pos++) {
        const key = chunk[pos];
        if (end !== undefined && key >= end) return;
        if (fn(key) === false) return;
      }
    }
  }

  toArray(): string[] {
    return this.chunks.flat();
  }
}
