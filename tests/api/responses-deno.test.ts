/** The Responses API suite against the router served in-process by Deno.serve on the embedded store. */
import { startDenoRouter } from "../helpers/router.ts";
import { responsesSuite } from "./responses-suite.ts";

responsesSuite("deno", (env) => startDenoRouter(env));
