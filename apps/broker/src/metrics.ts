import { createServer, type Server } from "node:http";
import type { BrokerObserver, NodeHealth, Provisioned } from "@geowatch/core";

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;
const key = (name: string, labels: Labels) => `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`).join(",")}}`;

/** Prometheus counters and latency histograms fed by broker observers. */
export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly histograms = new Map<string, { buckets: number[]; sum: number; count: number; labels: Labels }>();
  private backendOf: (node: string) => string = () => "unknown";

  /** Tells metrics which backend each node uses, for the `backend` label. */
  setNodes(health: NodeHealth[]): void {
    const map = new Map(health.map((h) => [`${h.broker}/${h.node}`, h.backend]));
    this.backendOf = (n) => map.get(n) ?? "unknown";
  }

  private inc(name: string, labels: Labels, n = 1) {
    const k = key(name, labels);
    this.counters.set(k, (this.counters.get(k) ?? 0) + n);
  }

  private observe(labels: Labels, seconds: number) {
    const k = key("geowatch_send_latency_seconds", labels);
    let h = this.histograms.get(k);
    if (!h) this.histograms.set(k, (h = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0, labels }));
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.buckets[i]!++;
    h.sum += seconds;
    h.count++;
  }

  observer(broker: string): BrokerObserver {
    const l = (node: string) => ({ broker, node, backend: this.backendOf(`${broker}/${node}`) });
    return {
      received: (node, n) => this.inc("geowatch_received_total", l(node), n),
      sent: (sink, n, ms) => {
        this.inc("geowatch_sent_total", l(sink), n);
        this.observe(l(sink), ms / 1000);
      },
      failed: (sink, n) => this.inc("geowatch_send_errors_total", l(sink), n),
      retried: (sink, n) => this.inc("geowatch_retries_total", l(sink), n),
      deadLettered: (n) => this.inc("geowatch_dead_lettered_total", { broker }, n),
      deadLetterFailed: (n) => this.inc("geowatch_dead_letter_failures_total", { broker }, n),
      acked: (node, n) => this.inc("geowatch_acked_total", l(node), n),
    };
  }

  /** The Prometheus text exposition. */
  render(): string {
    const lines: string[] = [];
    const typed = new Set<string>();
    for (const [k, v] of [...this.counters].sort()) {
      const name = k.slice(0, k.indexOf("{"));
      if (!typed.has(name)) {
        typed.add(name);
        lines.push(`# TYPE ${name} counter`);
      }
      lines.push(`${k} ${v}`);
    }
    if (this.histograms.size > 0) lines.push("# TYPE geowatch_send_latency_seconds histogram");
    for (const h of this.histograms.values()) {
      BUCKETS.forEach((b, i) => lines.push(`${key("geowatch_send_latency_seconds_bucket", { ...h.labels, le: String(b) })} ${h.buckets[i]}`));
      lines.push(`${key("geowatch_send_latency_seconds_bucket", { ...h.labels, le: "+Inf" })} ${h.count}`);
      lines.push(`${key("geowatch_send_latency_seconds_sum", h.labels)} ${h.sum}`);
      lines.push(`${key("geowatch_send_latency_seconds_count", h.labels)} ${h.count}`);
    }
    return lines.join("\n") + "\n";
  }
}

/** Serves /metrics, /health (process alive, node states) and /ready (every backend connected). */
export function startHttp(port: number, host: string, metrics: Metrics, app: () => Provisioned | undefined): Promise<Server> {
  const server = createServer((req, res) => {
    const p = app();
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(metrics.render());
    } else if (path === "/health") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok", nodes: p?.health() ?? [] }));
    } else if (path === "/ready") {
      const ready = p?.ready() ?? false;
      res.writeHead(ready ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify({ ready, nodes: p?.health() ?? [] }));
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics, /health, /ready\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
