// Label selectors in Kubernetes' string syntax: "app=web", "tier!=db", "env in (a,b)", "env notin (c)", "gpu",
// "!legacy", combined with commas (AND). Also label key/value syntax checks.

export type Requirement =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!exists" };

export type Selector = Requirement[];

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const LABEL_KEY_RULE =
  "an optional DNS subdomain prefix and '/', then a name of at most 63 characters: alphanumerics, '-', '_' or '.', starting and ending alphanumeric";
export const LABEL_VALUE_RULE =
  "at most 63 characters: alphanumerics, '-', '_' or '.', starting and ending alphanumeric (or empty)";

export function isValidLabelKey(key: string): boolean {
  const slash = key.lastIndexOf("/");
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) return false;
  }
  return name.length > 0 && name.length <= 63 && LABEL_NAME.test(name);
}

export function isValidLabelValue(value: string): boolean {
  return value === "" || (value.length <= 63 && LABEL_NAME.test(value));
}

/** Parses a selector string; throws SyntaxError naming the bad part. The empty string selects everything. */
export function parseSelector(text: string): Selector {
  const requirements: Selector = [];
  for (const part of splitTopLevel(text)) {
    const trimmed = part.trim();
    if (trimmed) requirements.push(parseRequirement(trimmed));
  }
  return requirements;
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")") depth--;
    else if (text[i] === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

function parseRequirement(part: string): Requirement {
  const setMatch = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part);
  if (setMatch) {
    const values = setMatch[3].split(",").map((v) => v.trim()).filter(Boolean);
    return checked({ key: setMatch[1], op: setMatch[2] as "in" | "notin", values }, part);
  }
  const eqMatch = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
  if (eqMatch) {
    const op = eqMatch[2] === "!=" ? "!=" : "=";
    return checked({ key: eqMatch[1], op, value: eqMatch[3] }, part);
  }
  if (part.startsWith("!")) return checked({ key: part.slice(1).trim(), op: "!exists" }, part);
  return checked({ key: part, op: "exists" }, part);
}

function checked(requirement: Requirement, source: string): Requirement {
  if (!isValidLabelKey(requirement.key)) {
    throw new SyntaxError(`label selector "${source}": key "${requirement.key}" must be ${LABEL_KEY_RULE}`);
  }
  const values = "value" in requirement ? [requirement.value] : "values" in requirement ? requirement.values : [];
  for (const v of values) {
    if (!isValidLabelValue(v)) throw new SyntaxError(`label selector "${source}": value "${v}" must be ${LABEL_VALUE_RULE}`);
  }
  return requirement;
}

export function matchesSelector(selector: Selector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return selector.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case "=":
        return has && l[r.key] === r.value;
      case "!=":
        return !has || l[r.key] !== r.value;
      case "in":
        return has && r.values.includes(l[r.key]);
      case "notin":
        return !has || !r.values.includes(l[r.key]);
      case "exists":
        return has;
      case "!exists":
        return !has;
    }
  });
}

/** A matchLabels map as a selector. */
export function selectorFromMatchLabels(matchLabels: Record<string, string>): Selector {
  return Object.entries(matchLabels).map(([key, value]) => ({ key, op: "=", value }));
}

export function formatMatchLabels(matchLabels: Record<string, string>): string {
  return Object.entries(matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
