// etcdserverpb.Cluster: the member list, and membership changes delegated to the backend (which may refuse them
// with UnsupportedError until they go through Raft). MemberUpdate (changing peer URLs) is not offered.

import { status as Status, type handleUnaryCall, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { EtcdBackend, Member } from "./backend.js";
import { header } from "./convert.js";
import { grpcError } from "./errors.js";
import { reply } from "./kv-service.js";
import type { PbMemberAddRequest, PbMemberIdRequest } from "./proto.js";

function memberToPb(m: Member): object {
  return { ID: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
}

export function clusterService(backend: EtcdBackend): UntypedServiceImplementation {
  const h = (): object => header(backend, backend.currentRevision());
  const MemberList: handleUnaryCall<object, object> = (_call, cb) =>
    reply(cb, async () => ({ header: h(), members: (await backend.members()).map(memberToPb) }));
  const MemberAdd: handleUnaryCall<PbMemberAddRequest, object> = (call, cb) =>
    reply(cb, async () => {
      const r = await backend.memberAdd(call.request.peerURLs, call.request.isLearner);
      return { header: h(), member: memberToPb(r.member), members: r.members.map(memberToPb) };
    });
  const MemberRemove: handleUnaryCall<PbMemberIdRequest, object> = (call, cb) =>
    reply(cb, async () => ({ header: h(), members: (await backend.memberRemove(call.request.ID)).map(memberToPb) }));
  const MemberPromote: handleUnaryCall<PbMemberIdRequest, object> = (call, cb) =>
    reply(cb, async () => ({ header: h(), members: (await backend.memberPromote(call.request.ID)).map(memberToPb) }));
  const MemberUpdate: handleUnaryCall<object, object> = (_call, cb) =>
    cb(grpcError(Status.UNIMPLEMENTED, "etcdserver: MemberUpdate is not supported by Flotilla (remove and re-add the member)"), null);
  return { MemberList, MemberAdd, MemberRemove, MemberPromote, MemberUpdate };
}
