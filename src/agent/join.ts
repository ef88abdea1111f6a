// Joining: the agent presents a join token and its node description, and receives its own credential, which it
// keeps in its data directory so a restarted agent needs no token. A rebuilt machine with the same hostname joins
// again with a token and replaces the old credential. (PKI and mTLS slot in here in a later issue: the token
// will pin the CA, and the credential becomes a node certificate.)
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join as joinPath } from "node:path";
import { status } from "@grpc/grpc-js";
import { type ApiClient, describeError, isCode } from "../api/client.js";
import type { JoinResponse } from "../gen/flotilla/v1/cluster.js";
import type { Node } from "../gen/flotilla/v1/node.js";

export interface NodeIdentity {
  nodeName: string;
  credential: string;
  agentApiToken: string;
  heartbeatIntervalSeconds: number;
}

const IDENTITY_FILE = "identity.json";

export class JoinRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JoinRefusedError";
  }
}

export function loadIdentity(dataDir: string, nodeName: string): NodeIdentity | undefined {
  const path = joinPath(dataDir, IDENTITY_FILE);
  if (!existsSync(path)) return undefined;
  const identity = JSON.parse(readFileSync(path, "utf8")) as NodeIdentity;
  return identity.nodeName === nodeName ? identity : undefined;
}

export function saveIdentity(dataDir: string, identity: NodeIdentity): void {
  writeFileSync(joinPath(dataDir, IDENTITY_FILE), JSON.stringify(identity, null, 2), { mode: 0o600 });
}

/** Joins with a token. A refused token throws JoinRefusedError with a plain explanation. */
export async function joinCluster(client: ApiClient, token: string, node: Node): Promise<NodeIdentity> {
  if (!token) throw new JoinRefusedError("no join token: pass --token (create one on a master with 'flotilla token create')");
  client.setToken(token);
  let response: JoinResponse;
  try {
    response = await client.call<JoinResponse>((s, md, o, cb) => s.cluster.join({ node }, md, o, cb));
  } catch (e) {
    if (isCode(e, status.UNAUTHENTICATED) || isCode(e, status.PERMISSION_DENIED)) {
      throw new JoinRefusedError(`the master refused the join token: ${describeError(e)}. Create a new one with 'flotilla token create'.`);
    }
    throw e;
  }
  client.setToken(response.credential);
  return {
    nodeName: response.nodeName,
    credential: response.credential,
    agentApiToken: response.agentApiToken,
    heartbeatIntervalSeconds: response.heartbeatIntervalSeconds,
  };
}
