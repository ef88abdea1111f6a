// pino JSON logs to stderr with `component` and `node` fields; pretty-printed when stderr is a terminal.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(component: string, node: string, level = process.env.FLOTILLA_LOG_LEVEL ?? "info"): Logger {
  const base = { component, node };
  if (process.stderr.isTTY) {
    return pino({ level, base }, pino.transport({ target: "pino-pretty", options: { destination: 2, ignore: "pid,hostname" } }));
  }
  return pino({ level, base }, pino.destination(2));
}

/** A logger that drops everything, for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
