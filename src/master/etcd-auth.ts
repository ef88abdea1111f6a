// etcd's v3 API on the master's own client port, behind etcd's own authentication protocol, so that etcdctl and
// etcd client libraries work unchanged and nobody reaches the store without a Flotilla admin token: the client logs
// in with Auth.Authenticate (user "root", password: an admin token; `etcdctl --user root:$(cat admin.token)`) and
// sends the token it gets back as "token" metadata with every call, as clientv3 does.
import {
  Metadata,
  status,
  type handleUnaryCall,
  type Server,
  type ServerErrorResponse,
  type ServiceDefinition,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { Credentials } from "./auth/tokens.js";

/** The one etcd user: etcd's superuser name, so clients that assume it work. */
export const ETCD_USER = "root";

// etcd's own statuses (rpctypes), so clientv3 recognises them (it re-authenticates on an invalid token).
const AUTH_FAILED = etcdStatus(status.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password");
const USER_EMPTY = etcdStatus(status.INVALID_ARGUMENT, "etcdserver: user name is empty");
const INVALID_TOKEN = etcdStatus(status.UNAUTHENTICATED, "etcdserver: invalid auth token");

function etcdStatus(code: status, details: string): ServerErrorResponse {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

type Check = (metadata: Metadata) => Promise<ServerErrorResponse | undefined>;

/** Checks the "token" metadata of a call: it must be an admin token. */
export function etcdTokenCheck(credentials: Credentials): Check {
  return async (metadata) => {
    const value = metadata.get("token")[0];
    const token = typeof value === "string" ? value : (value?.toString() ?? "");
    if (!token) return USER_EMPTY;
    const principal = await credentials.authenticate(token).catch(() => undefined);
    return principal?.role === "admin" ? undefined : INVALID_TOKEN;
  };
}

/** Wraps every handler of a service so that it runs only for a call that carries a valid token. */
export function requireEtcdToken(check: Check) {
  return (definition: ServiceDefinition, impl: UntypedServiceImplementation): UntypedServiceImplementation => {
    const guarded: UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(impl)) {
      const method = definition[name];
      if (!method) continue;
      guarded[name] = guard(handler, check, !method.responseStream);
    }
    return guarded;
  };
}

function guard(handler: UntypedHandleCall, check: Check, unaryResponse: boolean): UntypedHandleCall {
  // Unary and client-streaming calls answer through a callback; server- and bidi-streaming ones by the call's status.
  if (unaryResponse) {
    return ((call: { metadata: Metadata }, callback: (e: ServerErrorResponse | null, v: unknown) => void) => {
      void check(call.metadata).then((refused) => (refused ? callback(refused, null) : (handler as (c: unknown, cb: unknown) => void)(call, callback)));
    }) as UntypedHandleCall;
  }
  return ((call: { metadata: Metadata; emit(event: "error", e: ServerErrorResponse): boolean }) => {
    void check(call.metadata).then((refused) => (refused ? call.emit("error", refused) : (handler as (c: unknown) => void)(call)));
  }) as UntypedHandleCall;
}

/** etcdserverpb.Auth with Authenticate only: users and roles are Flotilla's tokens, not etcd's user store. */
export function addEtcdAuthService(server: Server, definition: ServiceDefinition, credentials: Credentials, header: () => object): void {
  const Authenticate: handleUnaryCall<{ name: string; password: string }, object> = (call, callback) => {
    const { name, password } = call.request;
    if (!name) return callback(USER_EMPTY, null);
    void credentials
      .authenticate(password)
      .catch(() => undefined)
      .then((principal) => {
        if (name !== ETCD_USER || principal?.role !== "admin") return callback(AUTH_FAILED, null);
        // The token is the password itself: every master accepts it, so a client may fail over without logging in
        // again, and revoking the admin token revokes it.
        callback(null, { header: header(), token: password });
      });
  };
  server.addService(definition, { Authenticate });
}
