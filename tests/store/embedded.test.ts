/** Runs the store conformance suite against the embedded (in-process) store. */
import { EmbeddedStore } from "../../src/store/embedded.ts";
import { storeConformance } from "./conformance.ts";

storeConformance("embedded", (options) => {
  const store = new EmbeddedStore(options);
  return Promise.resolve({ store, peer: store, close: () => store.close() });
});
