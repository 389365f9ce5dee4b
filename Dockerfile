# The worker and the FileMaker simulator for docker-compose.yml (both run from this image with different commands).
# Not built on the project's own machines, which have no Docker engine: see README, "Docker".
# The same Node as the node-linux-* package pinned in package.json.
FROM node:24.22.3-bookworm-slim
WORKDIR /app
# Dependencies first, so a change to the sources does not reinstall them. Dev dependencies stay: compose runs the
# worker and the simulator under tsx (`npm run worker`, `npm run sim`).
COPY package.json package-lock.json ./
# The image's own Node runs everything, so the registry's copy of that same Node (an optional dependency, for machines
# whose Node is older) is dropped again.
RUN npm ci --no-audit --no-fund && rm -rf node_modules/node-linux-* node_modules/.bin/node
COPY . .
# The workflow bundle and the compiled worker, for `npm run worker:prod`; the worker loads the prebuilt bundle.
RUN npm run build
ENV TEMPORAL_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js
USER node
CMD ["npm", "run", "worker:prod"]
