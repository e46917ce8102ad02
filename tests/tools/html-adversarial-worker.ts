/** Runs htmlToMarkdown over the adversarial pages it is sent (in a Worker, so the test can bound it in time). */
import { htmlToMarkdown } from "../../workers/tools/html-to-markdown.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<{ name: string; html: string }[]>) => void) | null;
  postMessage(message: unknown): void;
}
const scope = self as unknown as WorkerScope;

scope.onmessage = (event) => {
  const results = event.data.map(({ name, html }) => {
    const t0 = performance.now();
    const { markdown, title } = htmlToMarkdown(html, "https://site.example/");
    return {
      name,
      inputLength: html.length,
      outputLength: markdown.length + (title?.length ?? 0),
      ms: performance.now() - t0,
    };
  });
  scope.postMessage(results);
};
