/**
 * Custom-tool grammars → GBNF over JSON-escaped text (workers/gpu/lark-to-gbnf.ts): exact output for small
 * grammars, JSON escaping of literals and classes, and what is refused. That llama.cpp compiles and obeys the result
 * is tested with a real worker in tests/api/responses-gpu.test.ts.
 */
import assert from "node:assert/strict";
import { freeformCallGrammar } from "../../workers/gpu/freeform-grammar.ts";
import { larkToGbnf, regexToGbnf } from "../../workers/gpu/lark-to-gbnf.ts";

Deno.test("Lark rules become GBNF rules; literals and LF are JSON-escaped", () => {
  assert.equal(
    larkToGbnf('start: "say \\"hi\\"" LF? name+\nname: "a".."c" | /[0-9]{2}/ -> num\n%import common.LF\n'),
    [
      'l-start ::= "say \\\\\\"hi\\\\\\"" (l-LF)? (l-name)+',
      "l-name ::= ([a-c] | ([0-9]){2})",
      'l-LF ::= "\\\\n"',
      "",
    ].join("\n"),
  );
});

Deno.test("classes admit their plain members and the JSON escapes of the rest", () => {
  // `.`: anything but a newline, so quotes and backslashes only escaped, other controls left out.
  assert.equal(
    regexToGbnf(".", ""),
    '([^\\x00-\\x1f"\\\\] | "\\\\b" | "\\\\t" | "\\\\f" | "\\\\r" | "\\\\\\"" | "\\\\\\\\")',
  );
  assert.equal(regexToGbnf("[a-z]+", ""), "([a-z])+");
  assert.equal(regexToGbnf('[\\n"x]', ""), '([x] | "\\\\n" | "\\\\\\"")');
  assert.equal(regexToGbnf("\\d{1,3}|ab?", ""), '(([0-9]){1,3} | "a" ("b")?)');
  assert.equal(regexToGbnf("^(?:yes|no)$", ""), '(("yes" | "no"))');
  for (const bad of ["(?=a)", "\\bword", "(a)\\1", "a++"]) assert.throws(() => regexToGbnf(bad, ""), Error, bad);
  assert.throws(() => regexToGbnf("a", "i"));
});

Deno.test("a forced call of a grammar tool is the whole JSON call; other choices get no custom grammar", () => {
  const tool = {
    name: "answer",
    parameters: { type: "object" },
    freeform: { syntax: "regex" as const, definition: "yes|no" },
  };
  assert.equal(
    freeformCallGrammar([tool], { name: "answer" }),
    'root ::= "{\\"name\\": \\"answer\\", \\"arguments\\": {\\"input\\": \\"" l-start "\\"}}"\nl-start ::= ("yes" | "no")\n',
  );
  assert.ok(freeformCallGrammar([tool], "required"));
  assert.equal(freeformCallGrammar([tool], "auto"), undefined);
  assert.equal(freeformCallGrammar([{ ...tool, freeform: { syntax: "text" } }], { name: "answer" }), undefined);
  assert.equal(freeformCallGrammar([{ ...tool, freeform: undefined }], { name: "answer" }), undefined);
});
