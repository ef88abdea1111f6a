import { describe, expect, it } from "vitest";
import { isValidLabelKey, isValidLabelValue, matchesSelector, parseSelector } from "../../src/api/labels.js";

describe("label selectors", () => {
  const labels = { app: "web", tier: "front", env: "prod" };

  it("matches equality, inequality, set and existence requirements", () => {
    expect(matchesSelector(parseSelector("app=web"), labels)).toBe(true);
    expect(matchesSelector(parseSelector("app==web,tier=front"), labels)).toBe(true);
    expect(matchesSelector(parseSelector("app!=web"), labels)).toBe(false);
    expect(matchesSelector(parseSelector("missing!=x"), labels)).toBe(true);
    expect(matchesSelector(parseSelector("env in (prod, staging)"), labels)).toBe(true);
    expect(matchesSelector(parseSelector("env notin (prod)"), labels)).toBe(false);
    expect(matchesSelector(parseSelector("tier"), labels)).toBe(true);
    expect(matchesSelector(parseSelector("!tier"), labels)).toBe(false);
    expect(matchesSelector(parseSelector(""), labels)).toBe(true);
  });

  it("names the bad part of a malformed selector", () => {
    expect(() => parseSelector("app=we b")).toThrow(SyntaxError);
    expect(() => parseSelector("-bad-=x")).toThrow(/key "-bad-"/);
  });

  it("checks label keys and values", () => {
    expect(isValidLabelKey("app")).toBe(true);
    expect(isValidLabelKey("flotilla.io/node")).toBe(true);
    expect(isValidLabelKey("Bad Key")).toBe(false);
    expect(isValidLabelKey(`${"a".repeat(64)}`)).toBe(false);
    expect(isValidLabelValue("")).toBe(true);
    expect(isValidLabelValue("v1.2_3-x")).toBe(true);
    expect(isValidLabelValue("-x")).toBe(false);
  });
});
