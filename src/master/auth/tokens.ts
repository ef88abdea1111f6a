// Credentials the master checks. Three kinds of bearer token, all random and compared by hash in constant time:
// - the admin token (CLI and API users), kept in the master's data directory;
// - join tokens ("<id>.<secret>", like kubeadm's), created by `flotilla token create`, valid until they expire;
// - node credentials ("<node>/<secret>"), issued at join, so a node can act only as itself.
// Full PKI and mTLS replace the admin and node tokens in a later issue; the join flow stays in this module.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Store } from "../../store/index.js";

const JOIN_TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
export const DEFAULT_JOIN_TOKEN_TTL_SECONDS = 24 * 3600;

export type Principal = { role: "admin" } | { role: "node"; nodeName: string } | { role: "joiner"; tokenId: string };

interface JoinTokenRecord {
  secretHash: string;
  expiresAt: string;
  description: string;
}

interface NodeCredentialRecord {
  secretHash: string;
  issuedAt: string;
}

export function randomToken(length: number): string {
  const bytes = randomBytes(length);
  return [...bytes].map((b) => TOKEN_ALPHABET[b % TOKEN_ALPHABET.length]).join("");
}

function hash(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

function sameHash(secret: string, expectedHash: string): boolean {
  const a = Buffer.from(hash(secret), "hex");
  const b = Buffer.from(expectedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

const encodeJson = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const decodeJson = <T>(bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as T;

export class Credentials {
  constructor(
    private readonly store: Store,
    private readonly adminToken: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async createJoinToken(ttlSeconds: number, description: string): Promise<{ token: string; expiresAt: string }> {
    const id = randomToken(6);
    const secret = randomToken(16);
    const ttl = ttlSeconds > 0 ? ttlSeconds : DEFAULT_JOIN_TOKEN_TTL_SECONDS;
    const expiresAt = new Date(this.now().getTime() + ttl * 1000).toISOString();
    const record: JoinTokenRecord = { secretHash: hash(secret), expiresAt, description };
    await this.store.put(`/registry/jointokens/${id}`, encodeJson(record));
    return { token: `${id}.${secret}`, expiresAt };
  }

  async issueNodeCredential(nodeName: string): Promise<string> {
    const secret = randomToken(32);
    const record: NodeCredentialRecord = { secretHash: hash(secret), issuedAt: this.now().toISOString() };
    await this.store.put(`/registry/nodecredentials/${nodeName}`, encodeJson(record));
    return `${nodeName}/${secret}`;
  }

  /** Who presents this bearer token, or undefined for nobody we know. */
  async authenticate(token: string): Promise<Principal | undefined> {
    if (!token) return undefined;
    if (token.length === this.adminToken.length && timingSafeEqual(Buffer.from(token), Buffer.from(this.adminToken))) {
      return { role: "admin" };
    }
    const join = JOIN_TOKEN.exec(token);
    if (join) return (await this.checkJoinToken(join[1], join[2])) ? { role: "joiner", tokenId: join[1] } : undefined;
    const slash = token.lastIndexOf("/");
    if (slash > 0) {
      const nodeName = token.slice(0, slash);
      const kv = await this.store.get(`/registry/nodecredentials/${nodeName}`);
      if (kv && sameHash(token.slice(slash + 1), decodeJson<NodeCredentialRecord>(kv.value).secretHash)) {
        return { role: "node", nodeName };
      }
    }
    return undefined;
  }

  private async checkJoinToken(id: string, secret: string): Promise<boolean> {
    const kv = await this.store.get(`/registry/jointokens/${id}`);
    if (!kv) return false;
    const record = decodeJson<JoinTokenRecord>(kv.value);
    return sameHash(secret, record.secretHash) && new Date(record.expiresAt) > this.now();
  }
}
