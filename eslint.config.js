// Lint rules, including the module boundaries of the design: src/raft imports nothing else from the project,
// and the agent reaches masters only through the API client (never the master's or the store's code).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const boundary = (from, patterns, message) => ({
  files: [from],
  rules: { "no-restricted-imports": ["error", { patterns: [{ group: patterns, message }] }] },
});

export default tseslint.config(
  { ignores: ["dist/", "src/gen/", "node_modules/", ".flotilla/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
    },
  },
  boundary(
    "src/raft/**",
    ["**/api/**", "**/agent/**", "**/cli/**", "**/common/**", "**/master/**", "**/net/**", "**/store/**", "**/gen/flotilla/v1/**"],
    "src/raft depends on nothing else in the project (only its own generated wire code, src/gen/flotilla/raft)",
  ),
  boundary("src/agent/**", ["**/master/**", "**/store/**"], "the agent talks to masters only through the API (src/api)"),
  boundary("src/net/**", ["**/master/**", "**/store/**"], "the proxy talks to masters only through the API (src/api)"),
  boundary("src/store/**", ["**/master/**", "**/agent/**", "**/cli/**"], "the store sits below the master"),
  { files: ["**/*.js", "**/*.mjs"], languageOptions: { globals: { process: "readonly", console: "readonly" } } },
);
