/** web_fetch's address rules and allow-list, and the HTML → Markdown conversion, as pure functions. */
import assert from "node:assert/strict";
import { htmlToMarkdown } from "../../workers/tools/html-to-markdown.ts";
import { AllowList, checkDestination, nonPublicReason } from "../../workers/tools/net-guard.ts";

Deno.test("non-public addresses are recognised, IPv4 and IPv6, embedded IPv4 included", () => {
  const refused = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254", // AWS, GCP, Azure metadata
    "100.100.100.200", // Alibaba metadata (carrier-grade NAT range)
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fd00:ec2::254", // AWS metadata over IPv6
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
    "2002:7f00:1::", // 6to4 of 127.0.0.1
    "2001:db8::1",
  ];
  for (const ip of refused) assert.ok(nonPublicReason(ip), `${ip} should be refused`);
  for (const ip of ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]) {
    assert.equal(nonPublicReason(ip), undefined, `${ip} is public`);
  }
  assert.match(nonPublicReason("169.254.169.254")!, /metadata/);
});

Deno.test("allow-list entries: IP with port, CIDR, host names, wildcards", () => {
  const allow = AllowList.parse("127.0.0.1:8080, 10.1.0.0/16, intranet.lan, *.corp.example, [::1]:9000");
  assert.ok(allow.permits("127.0.0.1", "127.0.0.1", 8080));
  assert.ok(!allow.permits("127.0.0.1", "127.0.0.1", 8081), "another port on an allowed IP");
  assert.ok(allow.permits("x", "10.1.200.3", 80));
  assert.ok(!allow.permits("x", "10.2.0.1", 80));
  assert.ok(allow.permits("intranet.lan", "192.168.0.5", 443));
  assert.ok(allow.permits("wiki.corp.example", "10.9.9.9", 443));
  assert.ok(!allow.permits("corp.example.evil", "10.9.9.9", 443));
  assert.ok(allow.permits("::1", "::1", 9000));
  assert.throws(() => AllowList.parse("10.0.0.0/99"), /prefix/);
  assert.throws(() => AllowList.parse("bad host!"), /not a host name/);
});

Deno.test("every resolved address is checked; localhost is loopback whatever the resolver says", async () => {
  const allow = AllowList.parse("127.0.0.1:3000");
  const resolver = (answers: Record<string, string[]>) => (host: string) => Promise.resolve(answers[host] ?? []);
  const mixed = resolver({ "mixed.example": ["93.184.216.34", "10.0.0.7"], "ok.example": ["93.184.216.34"] });
  await assert.rejects(checkDestination(new URL("http://mixed.example/"), allow, mixed), /10\.0\.0\.7, a private/);
  assert.deepEqual(await checkDestination(new URL("http://ok.example/x"), allow, mixed), {
    address: "93.184.216.34",
    port: 80,
  });
  await assert.rejects(checkDestination(new URL("http://localhost:3001/"), allow, mixed), /loopback/);
  assert.equal((await checkDestination(new URL("http://localhost:3000/"), allow, mixed)).address, "127.0.0.1");
  await assert.rejects(checkDestination(new URL("http://nowhere.example/"), allow, mixed), /could not resolve/);
  // The URL parser normalises the old numeric forms, so they cannot slip past as host names.
  await assert.rejects(checkDestination(new URL("http://2130706433/"), allow, mixed), /loopback/);
  await assert.rejects(checkDestination(new URL("http://[::ffff:a9fe:a9fe]/"), allow, mixed), /link-local/);
});

Deno.test("HTML becomes readable Markdown: main content, headings, links, lists, code; scripts dropped", () => {
  const html = `<!doctype html><html><head><title>The &amp; Title</title><script>alert(1)</script></head>
    <body><nav><a href="/home">Home</a></nav>
    <main><h1>Hello</h1><p>Some <b>bold</b> text &mdash; and a <a href="/docs?a=1&amp;b=2">link</a>.</p>
    <ul><li>one</li><li>two<ol><li>inner</li></ol></li></ul>
    <pre><code>const x = 1;
  return x;</code></pre><style>.x{}</style><img alt="a chart" src="c.png"></main></body></html>`;
  const { title, markdown } = htmlToMarkdown(html, "https://site.example/page");
  assert.equal(title, "The & Title");
  assert.ok(!markdown.includes("alert") && !markdown.includes(".x{}") && !markdown.includes("Home"), markdown);
  assert.match(markdown, /^# Hello$/m);
  assert.match(markdown, /Some \*\*bold\*\* text — and a \[link\]\(https:\/\/site\.example\/docs\?a=1&b=2\)\./);
  assert.match(markdown, /^- one$/m);
  assert.match(markdown, /^ {2}1\. inner$/m);
  assert.match(markdown, /```\nconst x = 1;\n {2}return x;\n```/);
  assert.match(markdown, /\[image: a chart\]/);
});
