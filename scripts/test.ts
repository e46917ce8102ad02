/**
 * `deno task test`: runs every test file under tests/ with Deno's runner, then prints a plain
 * `N passed, N failed` line (Deno's own closing line is coloured and not one CI tools recognise).
 * Extra arguments are passed to `deno test` (e.g. a file or `--filter`).
 */
const args = Deno.args.length > 0 ? Deno.args : ["tests/"];
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "-A", ...args],
  env: { NO_COLOR: "1" },
  stdout: "piped",
  stderr: "inherit",
}).spawn();

let tail = "";
const decoder = new TextDecoder();
for await (const chunk of child.stdout) {
  const text = decoder.decode(chunk, { stream: true });
  await Deno.stdout.write(chunk);
  tail = (tail + text).slice(-4_000);
}
const { code } = await child.status;
const summary = /(\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed/.exec(tail);
const passed = summary ? Number(summary[1]) : 0;
const failed = summary ? Number(summary[3]) : code === 0 ? 0 : 1;
console.log(`\n${passed} passed, ${failed} failed`);
Deno.exit(code === 0 && summary ? 0 : code || 1);
