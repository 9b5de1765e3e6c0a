# syntax=docker/dockerfile:1
# United: multi-stage build. The runtime image holds the compiled JavaScript
# and production dependencies only, runs as the unprivileged `node` user, and
# starts `node` directly (not npm) so that `docker stop` SIGTERM reaches the
# server and it can flush and close cleanly (docs/operations.md §7).

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# sqlite3 compiles from source when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY broker ./broker
COPY admin ./admin
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
# MALLOC_MMAP_THRESHOLD_: scrypt (robot token and log-in checks) takes 16 MiB
# per call on libuv's threads; with glibc's sliding threshold that memory
# stays in each thread's arena for good (+64 MiB RSS). A fixed threshold
# returns it to the kernel after every call (test/bench/README.md, "Memory").
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=131072 \
    HOST=0.0.0.0 \
    HTTP_PORT=8000 \
    MQTT_PORT=1883 \
    DATABASE_URL=sqlite:/data/united.sqlite
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --from=build --chown=node:node /app/admin ./admin
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# 8883: MQTT over TLS, when MQTT_TLS_PORT=8883 and the certificate files are mounted (docs/operations.md §3)
EXPOSE 8000 1883 8883
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8000) + '/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# --max-semi-space-size=64: frames live from their arrival to their batch's
# commit, long enough for V8's default 16 MiB young generation to copy them
# and promote them to the old one. With 64 MiB they die young (test/bench/README.md,
# "Memory"; npm start and npm run bench run United the same way).
CMD ["node", "--max-semi-space-size=64", "dist/src/server.js"]
