// The master's Prometheus metrics, on a registry of its own so several masters can live in one process (tests).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class MasterMetrics {
  readonly registry = new Registry();
  readonly apiRequests = new Counter({
    name: "flotilla_api_requests_total",
    help: "API requests by service, method and gRPC status code.",
    labelNames: ["service", "method", "code"],
    registers: [this.registry],
  });
  readonly apiLatency = new Histogram({
    name: "flotilla_api_request_duration_seconds",
    help: "API request latency (unary calls; for streams, the time to set up).",
    labelNames: ["service", "method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly podsByPhase = new Gauge({
    name: "flotilla_pods",
    help: "Pods by phase.",
    labelNames: ["phase"],
    registers: [this.registry],
  });
  readonly schedulerAttempts = new Counter({
    name: "flotilla_scheduler_attempts_total",
    help: "Scheduling attempts by result (scheduled, unschedulable, error).",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly nodesReady = new Gauge({
    name: "flotilla_nodes",
    help: "Nodes by Ready condition status.",
    labelNames: ["ready"],
    registers: [this.registry],
  });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: "flotilla_master_" });
  }
}
