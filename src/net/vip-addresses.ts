// Where the userspace proxy's VIPs live, so its listeners can bind them. A VIP must be a local address of the node
// before a socket can bind it: LoopbackVips covers VIPs inside 127.0.0.0/8 (every such address is already local,
// nothing to set up: tests and one-machine demos), DummyInterfaceVips puts them on a dummy interface (default
// `flotilla0`, like kube-proxy's kube-ipvs0) with `ip`.
//
// DummyInterfaceVips invariants:
// - ensure() reads what the interface holds from the kernel each time (so addresses left by an earlier run are
//   cleaned up), creates the interface if it is missing, adds each missing address as a /32 (/128) and removes every
//   other one. Link-local addresses (the kernel's own) are left alone. Calls run one at a time.
// - The interface is left down, like kube-ipvs0: the kernel still adds a local route for each address (so binding
//   and local connections work), and a down interface gets no IPv6 link-local address nor any traffic of its own.
// - It refuses to use an existing interface of the same name that is not a dummy (or the bridge fallback below),
//   rather than add addresses to, and later delete, someone else's interface.
// - On a kernel without the dummy driver ("Unknown device type") it falls back to an empty bridge, which holds
//   addresses the same way, and logs that once.
// - close() deletes the interface (and with it every address); it is fine if it is already gone.
// - With `netns`, every command runs as `ip -n NETNS ...` (a namespace under /run/netns: the tests').
import { execFile } from "node:child_process";
import { isIP, isIPv4 } from "node:net";

/** Holds the node's VIPs so that sockets can bind them. */
export interface VipAddresses {
  /** Makes exactly `addresses` held: adds the missing ones, removes the stale ones. */
  ensure(addresses: readonly string[]): Promise<void>;
  /** Releases every address (and whatever held them). */
  close(): Promise<void>;
}

/** The part of a pino logger the VIP holders use. */
export interface VipLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silent: VipLog = { info: () => {}, warn: () => {} };

/** Whether `address` is a loopback address (127.0.0.0/8 or ::1), which any socket can bind with no set-up. */
export function isLoopbackAddress(address: string): boolean {
  if (isIPv4(address)) return address.startsWith("127.");
  return isIP(address) === 6 && canonicalAddress(address) === "::1";
}

/** The canonical text of an IP address (compressed, lower-case IPv6), as `ip` prints it. */
export function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** For VIPs inside 127.0.0.0/8: nothing to set up or release. Rejects any other address, which could not bind. */
export class LoopbackVips implements VipAddresses {
  async ensure(addresses: readonly string[]): Promise<void> {
    const others = addresses.filter((a) => !isLoopbackAddress(a));
    if (others.length > 0) {
      throw new Error(`LoopbackVips holds only 127.0.0.0/8 and ::1; ${others.join(", ")} need DummyInterfaceVips`);
    }
  }

  async close(): Promise<void> {}
}

/** Runs a command without a shell; rejects with an Error whose message includes the command's stderr. */
export type CommandRunner = (command: string, args: readonly string[]) => Promise<string>;

export interface DummyInterfaceVipsOptions {
  /** The interface name (default "flotilla0"). */
  name?: string;
  /** A network namespace (name under /run/netns) to manage the interface in, instead of the agent's own. */
  netns?: string;
  /** The ip binary (default "ip", from PATH). */
  ip?: string;
  /** How commands run (default: execFile with a timeout); tests substitute a fake. */
  run?: CommandRunner;
  log?: VipLog;
}

const IP_TIMEOUT_MS = 10_000;
const INTERFACE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

export const runCommand: CommandRunner = (command, args) =>
  new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: IP_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(" ")}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });

interface AddressInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
}

interface LinkJson {
  ifname: string;
  linkinfo?: { info_kind?: string };
  addr_info?: AddressInfo[];
}

/** What `ip -d -j addr show dev NAME` says: the link kind and the addresses we manage; undefined if absent. */
export function parseInterface(json: string): { kind: string; addresses: Map<string, number> } | undefined {
  const links = JSON.parse(json) as LinkJson[];
  const link = links[0];
  if (link === undefined) return undefined;
  const addresses = new Map<string, number>();
  for (const a of link.addr_info ?? []) {
    if (a.scope === "link" || typeof a.local !== "string") continue;
    addresses.set(canonicalAddress(a.local), a.prefixlen);
  }
  return { kind: link.linkinfo?.info_kind ?? "", addresses };
}

function missingDevice(err: unknown): boolean {
  const text = err instanceof Error ? err.message : String(err);
  return /does not exist|Cannot find device/i.test(text);
}

export class DummyInterfaceVips implements VipAddresses {
  readonly name: string;
  private readonly prefix: string[];
  private readonly ip: string;
  private readonly run: CommandRunner;
  private readonly log: VipLog;
  /** The kinds this holder accepts for the interface; the bridge is the fallback for kernels without dummy. */
  private readonly kinds = new Set(["dummy", "bridge"]);
  private queue: Promise<void> = Promise.resolve();

  constructor(options: DummyInterfaceVipsOptions = {}) {
    this.name = options.name ?? "flotilla0";
    if (!INTERFACE_NAME.test(this.name)) throw new Error(`"${this.name}" is not a valid interface name`);
    if (options.netns !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(options.netns)) {
      throw new Error(`"${options.netns}" is not a valid network namespace name`);
    }
    this.prefix = options.netns === undefined ? [] : ["-n", options.netns];
    this.ip = options.ip ?? "ip";
    this.run = options.run ?? runCommand;
    this.log = options.log ?? silent;
  }

  ensure(addresses: readonly string[]): Promise<void> {
    for (const a of addresses) if (isIP(a) === 0) return Promise.reject(new Error(`"${a}" is not an IP address`));
    return this.serialize(() => this.apply(addresses.map(canonicalAddress)));
  }

  close(): Promise<void> {
    return this.serialize(async () => {
      try {
        await this.ipCommand(["link", "del", this.name]);
        this.log.info({ interface: this.name }, "VIP interface removed");
      } catch (err) {
        if (!missingDevice(err)) throw err;
      }
    });
  }

  private async apply(wanted: string[]): Promise<void> {
    const current = (await this.read()) ?? (await this.create());
    const want = new Set(wanted);
    for (const address of want) {
      if (current.has(address)) continue;
      await this.ipCommand(["addr", "add", `${address}/${isIPv4(address) ? 32 : 128}`, "dev", this.name]);
    }
    for (const [address, prefixlen] of current) {
      if (want.has(address)) continue;
      await this.ipCommand(["addr", "del", `${address}/${prefixlen}`, "dev", this.name]);
    }
  }

  /** The managed addresses on the interface, or undefined if it does not exist. */
  private async read(): Promise<Map<string, number> | undefined> {
    let json: string;
    try {
      json = await this.ipCommand(["-d", "-j", "addr", "show", "dev", this.name]);
    } catch (err) {
      if (missingDevice(err)) return undefined;
      throw err;
    }
    const found = parseInterface(json);
    if (found === undefined) return undefined;
    if (!this.kinds.has(found.kind)) {
      throw new Error(`interface ${this.name} exists and is a "${found.kind}", not a dummy: refusing to manage it`);
    }
    return found.addresses;
  }

  private async create(): Promise<Map<string, number>> {
    try {
      await this.ipCommand(["link", "add", this.name, "type", "dummy"]);
    } catch (err) {
      if (!/Unknown device type|not supported/i.test(err instanceof Error ? err.message : String(err))) throw err;
      this.log.warn({ interface: this.name, err }, "this kernel has no dummy interfaces; holding the VIPs on an empty bridge");
      await this.ipCommand(["link", "add", this.name, "type", "bridge"]);
    }
    this.log.info({ interface: this.name }, "VIP interface created");
    return new Map();
  }

  private ipCommand(args: string[]): Promise<string> {
    return this.run(this.ip, [...this.prefix, ...args]);
  }

  private serialize(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => {});
    return run;
  }
}
