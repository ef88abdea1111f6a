// Kubernetes-style resource quantities: "250m", "0.5", "2" for CPU; "128Mi", "1Gi", "500M", "1e3" for memory.
// Parsed exactly with bigint arithmetic so that "0.1" + "0.2" cores is 300 millicores, not 300.0000001.

const BINARY_SUFFIXES: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};

const DECIMAL_EXPONENTS: Record<string, number> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const QUANTITY = /^([+]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

export const QUANTITY_RULE = 'a non-negative quantity such as "250m", "0.5", "2", "128Mi", "1Gi" or "500M"';

/** A quantity as an exact rational: value = numerator / 10^scale. */
interface Exact {
  numerator: bigint;
  scale: number;
}

function parseExact(text: string): Exact | undefined {
  const match = QUANTITY.exec(text.trim());
  if (!match) return undefined;
  const [, , digits, suffix = ""] = match;
  const [whole, fraction = ""] = digits.split(".");
  let numerator = BigInt((whole || "0") + fraction);
  let scale = fraction.length;
  if (suffix in BINARY_SUFFIXES) return { numerator: numerator * BINARY_SUFFIXES[suffix], scale };
  const exponent = suffix in DECIMAL_EXPONENTS ? DECIMAL_EXPONENTS[suffix] : Number(suffix.slice(1));
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 30) return undefined;
  if (exponent >= 0) numerator *= 10n ** BigInt(exponent);
  else scale -= exponent;
  return { numerator, scale };
}

/** Scales to units of 10^-targetScale, rounding up as Kubernetes does for requests. */
function toUnits(exact: Exact, targetScale: number): bigint {
  const shift = targetScale - exact.scale;
  if (shift >= 0) return exact.numerator * 10n ** BigInt(shift);
  const divisor = 10n ** BigInt(-shift);
  return (exact.numerator + divisor - 1n) / divisor;
}

export function isValidQuantity(text: string): boolean {
  return parseExact(text) !== undefined;
}

/** CPU in millicores ("250m" → 250, "0.5" → 500, "2" → 2000). Throws on a malformed quantity. */
export function parseCpuMillis(text: string): number {
  const exact = parseExact(text);
  if (!exact) throw new RangeError(`"${text}" is not ${QUANTITY_RULE}`);
  return Number(toUnits(exact, 3));
}

/** Memory or storage in bytes ("128Mi" → 134217728, "1G" → 1e9). Throws on a malformed quantity. */
export function parseBytes(text: string): number {
  const exact = parseExact(text);
  if (!exact) throw new RangeError(`"${text}" is not ${QUANTITY_RULE}`);
  return Number(toUnits(exact, 0));
}

export function formatCpuMillis(millis: number): string {
  return millis % 1000 === 0 ? String(millis / 1000) : `${Math.round(millis)}m`;
}

/** Bytes in the largest binary unit that divides them exactly, else Ki rounded down. */
export function formatBytes(bytes: number): string {
  const units: [string, number][] = [
    ["Ti", 2 ** 40],
    ["Gi", 2 ** 30],
    ["Mi", 2 ** 20],
    ["Ki", 2 ** 10],
  ];
  for (const [suffix, size] of units) if (bytes >= size && bytes % size === 0) return `${bytes / size}${suffix}`;
  if (bytes >= 1024) return `${Math.floor(bytes / 1024)}Ki`;
  return String(Math.floor(bytes));
}
