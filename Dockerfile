# The Auxot router as a container image (Fly.io, or any host that runs containers): Deno and the router's three
# npm packages (zod, itty-router, hash-wasm, pinned in deno.json's imports and fetched by Deno itself: no npm, no
# node_modules), a non-root user, and a health check on /health. Workers (GPU, CLI, tools) are not in it: they run
# next to the hardware and connect out to this router (Dockerfile.worker is the GPU worker's image).
#
#   docker build -t auxot-router .
#   docker run -p 8080:8080 -e AUXOT_ADMIN_KEY_HASH=... -e AUXOT_API_KEY_HASH=... auxot-router
#
# Keys are never generated inside the container: set the hashes that `deno task setup --fly` prints.
ARG DENO_VERSION=2.9.6

FROM denoland/deno:debian-${DENO_VERSION}
WORKDIR /app
# DENO_NO_PACKAGE_JSON: the router resolves its packages from deno.json alone, as `deno task start` does.
ENV AUXOT_HOST=0.0.0.0 \
    AUXOT_PORT=8080 \
    DENO_NO_PACKAGE_JSON=1 \
    DENO_NO_UPDATE_CHECK=1 \
    NO_COLOR=1
COPY deno.json ./
COPY src ./src
# The app's files belong to root and are read-only to the router: it cannot write a .env (or anything) here.
USER deno
# Fetch, compile and cache at build time, so that a machine starts serving at once (and needs no registry).
RUN deno cache --no-lock --node-modules-dir=none src/entry-deno.ts
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["deno", "eval", "--no-lock", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('AUXOT_PORT') ?? 8080}/health`).catch(() => null); Deno.exit(r?.ok ? 0 : 1)"]
CMD ["deno", "run", "--v8-flags=--heap-growing-percent=100", "--no-lock", "--node-modules-dir=none", "--allow-net", "--allow-env", "--allow-read", "--allow-sys", "src/entry-deno.ts"]
