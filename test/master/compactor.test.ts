// The leader compacts the store's history periodically, keeping the newest revisions: watches from before the window
// are told their revision was compacted, and the current objects are untouched. Checked on the in-memory store and
// on the MVCC store behind the adapter the replicated masters use.
import { afterEach, describe, expect, it } from "vitest";
import { Pod, type PodList } from "../../src/gen/flotilla/v1/pod.js";
import { MemoryEtcdBackend } from "../../src/store/etcd/memory-backend.js";
import { CompactedError, MemoryStore, type Store } from "../../src/store/index.js";
import { KvStoreAdapter } from "../../src/store/kv-adapter.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";

const stores: Record<string, () => Store> = {
  "in-memory store": () => new MemoryStore(),
  "MVCC store behind the adapter": () => {
    const backend = new MemoryEtcdBackend();
    return new KvStoreAdapter(backend, async () => backend.close());
  },
};

describe.each(Object.entries(stores))("history compaction on the leader (%s)", (_name, makeStore) => {
  let t: TestMaster | undefined;
  afterEach(async () => t?.stop());

  it("compacts old revisions, tells old watches so, and keeps every current object", async () => {
    t = await startTestMaster({ store: makeStore(), compactionIntervalSeconds: 0.1, retainRevisions: 5 });
    const client = t.client;
    for (let i = 0; i < 20; i++) {
      const pod = Pod.fromPartial({ metadata: { name: `p${i}` }, spec: { containers: [{ name: "c", command: ["sleep", "1"] }] } });
      await client.call((s, md, o, cb) => s.pods.createPod(pod, md, o, cb));
    }
    const store = t.master.store;
    const compacted = await eventually(
      () =>
        new Promise<Error | false>((resolve) => {
          const w = store.watch("/registry/", 1, { onEvents: () => undefined, onError: resolve });
          setTimeout(() => {
            w.cancel();
            resolve(false);
          }, 50);
        }),
      10_000,
      "revision 1 to be compacted",
    );
    expect(compacted).toBeInstanceOf(CompactedError);
    const list = await client.call<PodList>((s, md, o, cb) => s.pods.listPods({ namespace: "default", labelSelector: "", fieldSelector: "" }, md, o, cb));
    expect(list.items).toHaveLength(20);
    // A watch inside the retained window still replays.
    const recent = (await store.revision()) - 2;
    const events = await new Promise<number>((resolve, reject) => {
      let n = 0;
      const w = store.watch("/registry/", recent, { onEvents: (e) => (n += e.length), onError: reject });
      setTimeout(() => {
        w.cancel();
        resolve(n);
      }, 50);
    });
    expect(events).toBeGreaterThan(0);
  });
});
