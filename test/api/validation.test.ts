import { describe, expect, it } from "vitest";
import { Deployment } from "../../src/gen/flotilla/v1/deployment.js";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import { validateDeployment, validatePod } from "../../src/api/validation.js";

const fields = (errors: { field: string }[]) => errors.map((e) => e.field);

function deployment(overrides: Record<string, unknown> = {}) {
  return Deployment.fromJSON({
    metadata: { name: "web" },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: "web" } },
      template: {
        metadata: { labels: { app: "web" } },
        spec: { containers: [{ name: "main", image: "busybox", ports: [{ containerPort: 80 }], resources: { requests: { cpu: "250m", memory: "64Mi" } } }] },
      },
      ...overrides,
    },
  });
}

describe("validation", () => {
  it("accepts a well-formed deployment", () => {
    expect(validateDeployment(deployment())).toEqual([]);
  });

  it("requires DNS-1123 label names", () => {
    for (const name of ["Web", "web_1", "-web", "a".repeat(64), "web."]) {
      const d = deployment();
      d.metadata!.name = name;
      expect(fields(validateDeployment(d))).toContain("metadata.name");
    }
  });

  it("rejects negative replicas, naming the field", () => {
    const errors = validateDeployment(deployment({ replicas: -1 }));
    expect(errors).toEqual([{ field: "spec.replicas", value: -1, rule: "must be an integer >= 0" }]);
  });

  it("requires the template to carry the selector's labels", () => {
    const d = deployment({ selector: { matchLabels: { app: "other" } } });
    expect(fields(validateDeployment(d))).toContain("spec.template.metadata.labels");
  });

  it("checks ports and quantities field by field", () => {
    const pod = Pod.fromJSON({
      metadata: { name: "p" },
      spec: {
        restartPolicy: "Sometimes",
        containers: [
          { name: "a", image: "x", ports: [{ containerPort: 0 }, { containerPort: 80, hostPort: 70000, protocol: "SCTP" }], resources: { requests: { cpu: "1 core", gpu: "1" }, limits: { memory: "lots" } } },
          { name: "a", command: ["sleep"] },
        ],
      },
    });
    expect(fields(validatePod(pod)).sort()).toEqual(
      [
        "spec.containers[0].ports[0].containerPort",
        "spec.containers[0].ports[1].hostPort",
        "spec.containers[0].ports[1].protocol",
        "spec.containers[0].resources.requests.cpu",
        "spec.containers[0].resources.requests.gpu",
        "spec.containers[0].resources.limits.memory",
        "spec.containers[1].name",
        "spec.restartPolicy",
      ].sort(),
    );
  });

  it("requires a request to be within its limit", () => {
    const pod = Pod.fromJSON({ metadata: { name: "p" }, spec: { containers: [{ name: "a", image: "x", resources: { requests: { cpu: "2" }, limits: { cpu: "500m" } } }] } });
    expect(validatePod(pod)[0]).toMatchObject({ field: "spec.containers[0].resources.requests.cpu", rule: "must be less than or equal to the limit (500m)" });
  });

  it("requires an image or a command", () => {
    const pod = Pod.fromJSON({ metadata: { name: "p" }, spec: { containers: [{ name: "a" }] } });
    expect(fields(validatePod(pod))).toEqual(["spec.containers[0].image"]);
  });
});
