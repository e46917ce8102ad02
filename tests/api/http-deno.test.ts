/** The HTTP-level suite against the router served in-process by Deno.serve on the embedded store. */
import { startDenoRouter } from "../helpers/router.ts";
import { httpSuite } from "./http-suite.ts";

httpSuite("deno", (env) => startDenoRouter(env));
