// One HTTP GET on its own connection: a service proxy balances connections, and fetch would reuse a few.
import { get as httpGet } from "node:http";

export function getOnNewConnection(url: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, headers: host ? { host } : {}, timeout: 3000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer in 3 s`)));
    req.on("error", reject);
  });
}
