# tcp-proxy in a container.
#
#   docker build -t effect-tcp-proxy .
#   docker run --rm -p 4000:4000 effect-tcp-proxy --laddr :4000 HOST:PORT...
#
# The image also carries example/echo-server.ts, the demo's echo backend, for
# example/docker-compose.yml and example/kubernetes/.

# --- build: compile src/ with the dev dependencies, then drop them ----------
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here, and the
# `node` devDependency's install script would fetch a second Node 24; this
# image already runs Node 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- runtime: production dependencies and dist/ only -------------------------
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY example/echo-server.ts ./example/echo-server.ts
# The package's bin, on PATH (what `npm install -g` would link).
RUN chmod +x /app/dist/Main.js && ln -s /app/dist/Main.js /usr/local/bin/tcp-proxy
# The base image's unprivileged user (uid 1000); files stay root-owned, read-only to it.
USER node
EXPOSE 4000
ENTRYPOINT ["tcp-proxy"]
CMD ["--help"]
