/**
 * The client address that per-client throttling keys on. Behind a proxy (Fly, Cloudflare, nginx) every request comes
 * from the proxy's address, so one address would be every caller; the real one is in a header the proxy sets. A header
 * is only believed when the operator says which proxy sets it (AUXOT_TRUSTED_PROXY): an outsider can send any header,
 * and believing it would let one client pose as many (escaping its throttle) or as another (throttling it).
 *
 *   AUXOT_TRUSTED_PROXY unset or `none`   the connection's own peer address
 *   `fly`                                 Fly-Client-IP (Fly's proxy replaces whatever the client sent)
 *   `cloudflare`                          CF-Connecting-IP (likewise Cloudflare's)
 *   `10.0.0.2,10.0.0.3` (addresses)       when the peer is one of them, the right-most X-Forwarded-For entry that
 *                                         is not one of them (each proxy appends the address it saw)
 */
export type TrustedProxy =
  | { kind: "none" }
  | { kind: "header"; header: "fly-client-ip" | "cf-connecting-ip" }
  | { kind: "forwarded"; proxies: string[] };

const ADDRESS = /^[0-9A-Fa-f.:]{2,45}$/;

/** Parses AUXOT_TRUSTED_PROXY; a problem is pushed (naming the variable) rather than thrown. */
export function parseTrustedProxy(value: string, problems: string[]): TrustedProxy {
  const text = value.trim().toLowerCase();
  if (text === "" || text === "none") return { kind: "none" };
  if (text === "fly") return { kind: "header", header: "fly-client-ip" };
  if (text === "cloudflare") return { kind: "header", header: "cf-connecting-ip" };
  const proxies = text.split(",").map((p) => p.trim()).filter(Boolean);
  const bad = proxies.filter((p) => !ADDRESS.test(p));
  if (proxies.length === 0 || bad.length > 0) {
    problems.push(
      `AUXOT_TRUSTED_PROXY=${
        JSON.stringify(value)
      } must be "none", "fly", "cloudflare" or a comma-separated list of proxy IP addresses.`,
    );
    return { kind: "none" };
  }
  return { kind: "forwarded", proxies };
}

/** The address to throttle on: `peer` is what the runtime saw (the socket's peer, or Cloudflare's own header). */
export function clientAddress(headers: Headers, peer: string, trust: TrustedProxy | undefined): string {
  if (!trust || trust.kind === "none") return peer;
  if (trust.kind === "header") return headers.get(trust.header)?.trim().slice(0, 64) || peer;
  if (!trust.proxies.includes(peer)) return peer;
  const hops = (headers.get("x-forwarded-for") ?? "").split(",").map((h) => h.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trust.proxies.includes(hops[i])) return hops[i].slice(0, 64);
  }
  return peer;
}
