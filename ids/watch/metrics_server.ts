/**
 * Serves metrics over HTTP at `/metrics` (Prometheus scrapes it), bound only
 * to the address given: `127.0.0.1:9464`, `[::1]:9464`, or port 0 for any
 * free port.
 *
 * @module
 */
import { EXPOSITION_CONTENT_TYPE } from "./exposition.ts";

/** A running metrics endpoint. */
export interface MetricsServer {
  /** Where it serves, e.g. `http://127.0.0.1:9464/metrics`. */
  url: string;
  /** Stops serving. */
  shutdown(): Promise<void>;
}

/** Parses `host:port` (an IPv6 host in brackets). */
export function parseListenAddress(text: string): { hostname: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) {
    throw new Error(`Invalid listen address "${text}": use host:port, e.g. 127.0.0.1:9464`);
  }
  return { hostname: match[1] ?? match[2]!, port };
}

/** Serves `render()` at http://`address`/metrics until shut down. */
export function serveMetrics(address: string, render: () => string): MetricsServer {
  const { hostname, port } = parseListenAddress(address);
  const server = Deno.serve({ hostname, port, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path !== "/metrics") {
      return new Response("Not found: metrics are at /metrics\n", { status: 404 });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    return new Response(render(), { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
  });
  const bound = server.addr;
  const host = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
  return {
    url: `http://${host}:${bound.port}/metrics`,
    async shutdown() {
      await server.shutdown();
    },
  };
}
