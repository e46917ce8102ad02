/**
 * A custom tool's grammar applied once the model chose the tool itself (workers/gpu/freeform-switch.ts): the pure
 * watcher, and the llama engine on the generated tiny model, where `required` among a grammar tool and a function
 * leaves the choice to the (random) model — every call of the grammar tool must come out inside its Lark grammar,
 * which an unconstrained random string never is.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChatRequest, type ToolDefinition } from "../../src/protocol/chat.ts";
import type { JobEvent } from "../../src/protocol/events.ts";
import { larkMatches, parseLark } from "../../src/protocol/lark-grammar.ts";
import { ChatJob } from "../../src/protocol/worker-protocol.ts";
import { FreeformCallSwitch } from "../../workers/gpu/freeform-switch.ts";
import { LlamaEngine } from "../../workers/gpu/llama-engine.ts";
import { writeTinyGguf } from "../fixtures/tiny-gguf.ts";

const PATCH_LARK = `start: "*** Begin Patch" LF op~1..2 "*** End Patch"
op: "*** Delete File: " NAME LF
NAME: /[a-z]{1,6}\\.txt/
%import common.LF
`;

const patchTool: ToolDefinition = {
  name: "apply_patch",
  parameters: { type: "object", properties: { input: { type: "string" } }, required: ["input"] },
  freeform: { syntax: "lark", definition: PATCH_LARK },
};
const timeTool: ToolDefinition = {
  name: "get_time",
  parameters: { type: "object", properties: { zone: { type: "string", maxLength: 6 } }, required: ["zone"] },
};

Deno.test("the watcher: a grammar tool's call written the usual way switches; anything else does not", () => {
  const call = { type: "tool_call", index: 0, id: "c", name: "apply_patch" } as const;
  const fresh = () => FreeformCallSwitch.for([patchTool, timeTool], "auto")!;
  const rest = fresh().observe('Sure.<tool_call>\n{"name": "apply_patch"', [call]);
  assert.match(rest ?? "", /^root ::= ",\\"arguments\\":\{\\"input\\":\\"" l-start "\\"}}"\n/);
  const later = fresh().observe('<tool_call>\n{"name": "apply_patch", "arguments": {"in', [call]);
  assert.match(later ?? "", /^root ::= "put\\":\\"" l-start/);
  assert.equal(fresh().observe('<tool_call>\n{"name": "apply_patch", "input"', [call]), undefined);
  assert.equal(fresh().observe('{"arguments": {}, "name": "apply_patch"}', [call]), undefined);
  assert.equal(fresh().observe('<tool_call>\n{"name": "get_time"', [{ ...call, name: "get_time" }]), undefined);
  assert.equal(FreeformCallSwitch.for([patchTool], { name: "apply_patch" }), undefined, "forced: its own grammar");
  assert.equal(FreeformCallSwitch.for([patchTool], "none"), undefined);
  assert.equal(FreeformCallSwitch.for([timeTool], "auto"), undefined);
});

Deno.test({
  name: "the llama engine: a grammar tool the model picks itself is written inside its grammar",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "auxot-freeform-switch-"));
  const modelPath = join(dir, "tiny.gguf");
  await writeTinyGguf(modelPath, {});
  const engine = new LlamaEngine({ modelPath, threads: 1 });
  const grammar = parseLark(PATCH_LARK);
  try {
    await engine.applyPolicy({
      version: "v1",
      engine: "llama",
      model: { name: "tiny" },
      ctxSize: 2048,
      maxParallel: 1,
    });
    const picked = { apply_patch: 0, get_time: 0 };
    for (let seed = 1; seed <= 8; seed++) {
      const job = ChatJob.parse({
        id: `job-${seed}`,
        kind: "chat",
        request: ChatRequest.parse({
          requestedModel: "tiny",
          messages: [{ role: "user", content: [{ type: "text", text: "Delete the old files." }] }],
          tools: [patchTool, timeTool],
          toolChoice: "required",
          maxTokens: 300,
          temperature: 1,
          seed,
        }),
        attempt: 1,
        deadlineMs: 60_000,
      });
      const events: JobEvent[] = [];
      await engine.run(job, { emit: (event) => events.push(event) }, new AbortController().signal);
      const call = events.find((e) => e.type === "tool_call");
      assert.ok(call?.type === "tool_call", JSON.stringify(events.slice(-3)));
      const args = JSON.parse(events.map((e) => e.type === "tool_args" ? e.delta : "").join(""));
      assert.deepEqual(events.at(-1), { type: "done", finishReason: "tool_calls" });
      if (call.name === "apply_patch") {
        assert.ok(larkMatches(grammar, args.input), JSON.stringify(args.input));
      } else assert.equal(typeof args.zone, "string");
      picked[call.name as keyof typeof picked]++;
    }
    assert.ok(picked.apply_patch > 0, `the model never picked the grammar tool: ${JSON.stringify(picked)}`);
  } finally {
    await engine.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
