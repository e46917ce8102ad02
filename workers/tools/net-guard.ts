/**
 * Which addresses web_fetch may reach. Every destination (the first URL and each redirect) is resolved to IP
 * addresses here, and a host whose addresses include a loopback, private, link-local (cloud metadata at
 * 169.254.169.254), carrier-grade NAT (100.64/10, Alibaba's metadata), unique-local (fd00:ec2::254),
 * multicast or reserved address is refused — unless an allow-list entry permits it. The caller then connects
 * to the address checked here (not a second resolution), so DNS rebinding cannot swap it for another.
 *
 * Allow-list entries (AUXOT_WEB_FETCH_ALLOW / --fetch-allow, comma-separated): a host name (`intranet.lan`,
 * `*.corp.example`), an IP address (`127.0.0.1`, `::1`) or a CIDR block (`10.1.0.0/16`), each optionally with a
 * port (`127.0.0.1:8080`, `[::1]:8080`, `wiki.lan:443`), which then permits that port only.
 */
import { lookup } from "node:dns/promises";

export interface AllowEntry {
  host?: string;
  /** Suffix match for `*.example.com` entries (stored as ".example.com"). */
  suffix?: string;
  network?: { bits: bigint; prefix: number; v6: boolean };
  port?: number;
}

export class AllowList {
  constructor(readonly entries: AllowEntry[] = []) {}

  /** Parses `host[:port]`, `[v6]:port`, `ip/prefix`; throws with the offending entry. */
  static parse(text: string | undefined): AllowList {
    const entries: AllowEntry[] = [];
    for (const raw of (text ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
      entries.push(parseEntry(raw));
    }
    return new AllowList(entries);
  }

  /** Whether a non-public destination is permitted: by its host name or its address, and its port. */
  permits(hostname: string, address: string, port: number): boolean {
    const host = hostname.toLowerCase();
    const ip = parseIp(address);
    return this.entries.some((e) => {
      if (e.port !== undefined && e.port !== port) return false;
      if (e.host !== undefined) return e.host === host;
      if (e.suffix !== undefined) return host.endsWith(e.suffix);
      if (e.network && ip && ip.v6 === e.network.v6) {
        const width = ip.v6 ? 128 : 32;
        const shift = BigInt(width - e.network.prefix);
        return (ip.bits >> shift) === (e.network.bits >> shift);
      }
      return false;
    });
  }
}

function parseEntry(raw: string): AllowEntry {
  let host = raw;
  let port: number | undefined;
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(raw);
  if (bracketed) {
    host = bracketed[1];
    port = bracketed[2] ? Number(bracketed[2]) : undefined;
  } else if ((raw.match(/:/g) ?? []).length === 1) {
    const [h, p] = raw.split(":");
    host = h;
    port = Number(p);
  }
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65_535)) {
    throw new Error(`allow-list entry "${raw}": bad port`);
  }
  const [addr, prefixText] = host.split("/");
  const ip = parseIp(addr);
  if (ip) {
    const width = ip.v6 ? 128 : 32;
    const prefix = prefixText === undefined ? width : Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) {
      throw new Error(`allow-list entry "${raw}": bad prefix length`);
    }
    return { network: { bits: ip.bits, prefix, v6: ip.v6 }, port };
  }
  if (prefixText !== undefined) throw new Error(`allow-list entry "${raw}": a CIDR block needs an IP address`);
  if (host.startsWith("*.") && /^[a-z0-9.-]+$/i.test(host.slice(2))) {
    return { suffix: host.slice(1).toLowerCase(), port };
  }
  if (/^[a-z0-9.-]+$/i.test(host)) return { host: host.toLowerCase(), port };
  throw new Error(`allow-list entry "${raw}" is not a host name, IP address or CIDR block`);
}

interface ParsedIp {
  bits: bigint;
  v6: boolean;
}

/** An IPv4 or IPv6 address as a number, or undefined when the text is not one. */
export function parseIp(text: string): ParsedIp | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { bits: v4, v6: false };
  const v6 = parseIpv6(text);
  return v6 === undefined ? undefined : { bits: v6, v6: true };
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

function parseIpv6(text: string): bigint | undefined {
  let s = text.replace(/^\[|\]$/g, "").split("%")[0];
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tail) {
    const v4 = parseIpv4(tail[1]);
    if (v4 === undefined) return undefined;
    s = s.slice(0, -tail[1].length) + `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - rest.length;
  if ((halves.length === 1 && missing !== 0) || (halves.length === 2 && missing < 1)) return undefined;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

const V4_BLOCKS: [string, number, string][] = [
  ["0.0.0.0", 8, "a reserved address"],
  ["10.0.0.0", 8, "a private address"],
  ["100.64.0.0", 10, "a carrier-grade NAT address"],
  ["127.0.0.0", 8, "a loopback address"],
  ["169.254.0.0", 16, "a link-local address (cloud metadata lives here)"],
  ["172.16.0.0", 12, "a private address"],
  ["192.0.0.0", 24, "a reserved address"],
  ["192.0.2.0", 24, "a documentation address"],
  ["192.88.99.0", 24, "a reserved address"],
  ["192.168.0.0", 16, "a private address"],
  ["198.18.0.0", 15, "a reserved address"],
  ["198.51.100.0", 24, "a documentation address"],
  ["203.0.113.0", 24, "a documentation address"],
  ["224.0.0.0", 4, "a multicast address"],
  ["240.0.0.0", 4, "a reserved address"],
];

/** Why an address is not a public one (undefined when it is public). */
export function nonPublicReason(address: string): string | undefined {
  const ip = parseIp(address);
  if (!ip) return "not an IP address";
  if (!ip.v6) return v4Reason(ip.bits);
  const bits = ip.bits;
  const top = (n: number) => bits >> BigInt(128 - n);
  if (bits === 0n) return "a reserved address";
  if (bits === 1n) return "a loopback address";
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the embedded IPv4 address.
  if (top(96) === 0xffffn || top(96) === 0x64ff9b0000000000000000n) return v4Reason(bits & 0xffffffffn);
  if (top(16) === 0x2002n) return v4Reason((bits >> 80n) & 0xffffffffn); // 6to4
  if (top(7) === 0x7en) return "a unique-local address (cloud metadata may live here)";
  if (top(10) === 0x3fan) return "a link-local address";
  if (top(8) === 0xffn) return "a multicast address";
  if (top(32) === 0x20010db8n) return "a documentation address";
  if (top(32) === 0x20010000n) return "a Teredo address";
  if (top(3) !== 1n) return "a reserved address"; // only 2000::/3 is global unicast
  return undefined;
}

function v4Reason(bits: bigint): string | undefined {
  for (const [base, prefix, reason] of V4_BLOCKS) {
    const shift = BigInt(32 - prefix);
    if ((bits >> shift) === (parseIpv4(base)! >> shift)) return reason;
  }
  return undefined;
}

export interface CheckedDestination {
  /** The address to connect to (one that passed the check). */
  address: string;
  port: number;
}

export type Resolver = (hostname: string) => Promise<string[]>;

/** getaddrinfo (honours /etc/hosts, like a browser would), every address. */
export const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/**
 * Resolves a URL's host and checks every address. Throws a message-bearing Error when the destination is
 * refused or does not resolve; returns the address to connect to.
 */
export async function checkDestination(url: URL, allow: AllowList, resolve: Resolver): Promise<CheckedDestination> {
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  let addresses: string[];
  if (parseIp(hostname)) addresses = [hostname];
  else if (hostname === "localhost" || hostname.endsWith(".localhost")) addresses = ["127.0.0.1"];
  else {
    try {
      addresses = await resolve(hostname);
    } catch {
      throw new Error(`could not resolve ${hostname}`);
    }
    if (addresses.length === 0) throw new Error(`could not resolve ${hostname}`);
  }
  for (const address of addresses) {
    const reason = nonPublicReason(address);
    if (reason && !allow.permits(hostname, address, port)) {
      throw new Error(
        `refused to fetch ${url.host}: it resolves to ${address}, ${reason}` +
          " (the tools worker's --fetch-allow list can permit it)",
      );
    }
  }
  return { address: addresses[0], port };
}
