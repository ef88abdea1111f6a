// The environment both drivers hand a container about its ports, so a program can bind without knowing which
// driver runs it: HOST (the address to bind), PORT (the first port) and PORT_<NAME> for each named port.

export interface PortBindingEnv {
  name: string;
  port: number;
}

/** Variables in `userEnv` win, so a pod can pin its own PORT. */
export function containerEnv(
  host: string | undefined,
  ports: PortBindingEnv[],
  userEnv: Record<string, string>,
  extra: Record<string, string> = {},
): Record<string, string> {
  const env: Record<string, string> = { ...extra };
  if (host !== undefined) env.HOST = host;
  if (ports.length > 0) env.PORT = String(ports[0].port);
  for (const { name, port } of ports) {
    if (name !== "") env[portEnvName(name)] = String(port);
  }
  return { ...env, ...userEnv };
}

/** "http-alt" -> "PORT_HTTP_ALT". */
export function portEnvName(name: string): string {
  return `PORT_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([key, value]) => `${key}=${value}`);
}
