# Berth's one image: API, scheduler, node agent, registry and Redis, each a
# different command (see docker-compose.yml). Nothing is pulled: the base image
# is built from this machine's binaries by deploy/build-base-image.sh.
#
#   deploy/build-base-image.sh berth-base:local
#   docker build --build-arg BASE_IMAGE=berth-base:local -t berth:local .
#
# native/build/berth-runtime, berth-shim and berth-spawner must be built first
# (`npm run setup` or `make -C native`); they are static, so the base needs
# nothing for them.
ARG BASE_IMAGE=berth-base:local
FROM ${BASE_IMAGE}

WORKDIR /opt/berth
COPY . .

ENV NODE_ENV=production \
    BERTH_STATE_DIR=/var/lib/berth \
    BERTH_API_ADDR=0.0.0.0:8080 \
    BERTH_AGENT_ADDR=0.0.0.0:8081 \
    CNI_PATH=/usr/lib/cni

EXPOSE 8080 8081
# The API by default; compose gives each service its own command.
CMD ["node", "--import", "./bin/ts-loader.mjs", "api/src/main.ts"]
