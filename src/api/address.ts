export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  if (i < 0) throw new Error(`"${address}" must be HOST:PORT`);
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`"${address}": port must be 0-65535`);
  return [address.slice(0, i).replace(/^\[|\]$/g, ""), port];
}
