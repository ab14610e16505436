#!/bin/sh
# Builds what azd deploys to App Service (infra/azure.yaml, prepackage hook):
# dist/app-service-slots, the release binary for Linux x86-64, started by the
# site's startup command /home/site/wwwroot/app-service-slots.
#
# The binary needs a glibc no newer than the App Service image's (Debian 12,
# glibc 2.36): build on Debian 12 / Ubuntu 22.04 or older, or in a container:
#   docker run --rm -v "$PWD/../..":/src -w /src/samples/app-service-slots rust:1-bookworm ./azd-package.sh
set -eu
cd "$(dirname "$0")"
cargo build --release --locked -p app-service-slots
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
rm -rf dist
mkdir -p dist
cp "$target_dir/release/app-service-slots" dist/
echo "azd-package: dist/app-service-slots ($(du -h dist/app-service-slots | cut -f1))"
