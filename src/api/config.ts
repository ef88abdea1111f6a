// The client config file (flotilla.yaml): where the masters are and which token to present.
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";

export interface ClientConfig {
  servers: string[];
  token: string;
  namespace?: string;
}

export const CONFIG_ENV = "FLOTILLA_CONFIG";
export const DEFAULT_CONFIG_PATH = ".flotilla/flotilla.yaml";

export function loadConfig(path: string): ClientConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new Error(`cannot read the client config ${path}: start a cluster with 'flotilla up', or pass --config FILE`);
  }
  const raw = (parse(text) ?? {}) as Partial<ClientConfig>;
  if (!Array.isArray(raw.servers) || raw.servers.length === 0 || raw.servers.some((s) => typeof s !== "string")) {
    throw new Error(`${path}: servers must be a list of HOST:PORT strings`);
  }
  if (typeof raw.token !== "string" || !raw.token) throw new Error(`${path}: token is required`);
  return { servers: raw.servers, token: raw.token, namespace: raw.namespace };
}

export function writeConfig(path: string, config: ClientConfig): void {
  writeFileSync(path, stringify(config), { mode: 0o600 });
}
