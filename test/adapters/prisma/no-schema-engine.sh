#!/bin/sh
# Stands in for Prisma's schema engine, which `prisma generate` insists on
# having on disk (it downloads it otherwise) but never runs: generating the
# client parses the schema with Prisma's WebAssembly build. Should anything
# run it, this fails loudly rather than pretending to be it.
echo "no-schema-engine.sh: Prisma's schema engine was called ($*); rota's tests do not provide it" >&2
exit 1
