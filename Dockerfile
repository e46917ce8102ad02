# The Auxot router as a container image (Fly.io, or any host that runs containers): Deno, the router's production
# npm dependencies only, a non-root user, and a health check on /health. Workers (GPU, CLI, tools) are not in it:
# they run next to the hardware and connect out to this router.
#
#   docker build -t auxot-router .
#   docker run -p 8080:8080 -e AUXOT_ADMIN_KEY_HASH=... -e AUXOT_API_KEY_HASH=... auxot-router
#
# Keys are never generated inside the container: set the hashes that `deno task setup --fly` prints.
ARG DENO_VERSION=2.9.6
ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Only what the router imports (zod, itty-router, hash-wasm, @upstash/redis): dev tools and the GPU worker's
# node-llama-cpp stay out, and no package runs an install script.
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund

FROM denoland/deno:debian-${DENO_VERSION}
WORKDIR /app
ENV AUXOT_HOST=0.0.0.0 \
    AUXOT_PORT=8080 \
    DENO_NO_UPDATE_CHECK=1 \
    NO_COLOR=1
COPY --from=deps /app/node_modules ./node_modules
COPY package.json deno.json ./
COPY src ./src
# The app's files belong to root and are read-only to the router: it cannot write a .env (or anything) here.
USER deno
# Compile and cache at build time, so that a machine starts serving at once.
RUN deno cache --no-lock src/entry-deno.ts
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["deno", "eval", "--no-lock", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('AUXOT_PORT') ?? 8080}/health`).catch(() => null); Deno.exit(r?.ok ? 0 : 1)"]
CMD ["deno", "run", "--no-lock", "--allow-net", "--allow-env", "--allow-read", "--allow-sys", "src/entry-deno.ts"]
