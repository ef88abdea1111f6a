// What every client command needs: the config file, a connected client, the namespace.
import { ApiClient } from "../api/client.js";
import { CONFIG_ENV, DEFAULT_CONFIG_PATH, loadConfig } from "../api/config.js";

export interface GlobalOptions {
  config?: string;
  namespace?: string;
}

export function configPath(opts: GlobalOptions): string {
  return opts.config ?? process.env[CONFIG_ENV] ?? DEFAULT_CONFIG_PATH;
}

export function connect(opts: GlobalOptions): { client: ApiClient; namespace: string } {
  const config = loadConfig(configPath(opts));
  const client = new ApiClient({ servers: config.servers, token: config.token });
  return { client, namespace: opts.namespace ?? config.namespace ?? "default" };
}

export function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}
