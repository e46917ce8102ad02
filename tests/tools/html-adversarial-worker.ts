/** Runs htmlToMarkdown over the adversarial pages it is sent (in a Worker, so the test can bound it in time). */
import { htmlToMarkdown } from "../../workers/tools/html-to-markdown.ts";

self.onmessage = (event: MessageEvent<{ name: string; html: string }[]>) => {
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
  self.postMessage(results);
};
