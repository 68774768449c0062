#!/bin/sh
# check_dependencies.sh LIBRARY [BINARY...] --exports SYMBOL...
#
# A generated kernel library, and programs linked with it, depend on no part of nibble, LLVM or
# Python, and do not link the CUDA driver or runtime (libcuda is opened with dlopen); the
# library exports exactly the functions its header declares.
set -eu
library="$1"
binaries=""
while [ $# -gt 0 ] && [ "$1" != "--exports" ]; do
  binaries="$binaries $1"
  shift
done
[ "${1:-}" = "--exports" ] || { echo "usage: $0 LIBRARY [BINARY...] --exports SYMBOL..."; exit 2; }
shift

status=0
for binary in $binaries; do
  needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  echo "$binary needs: $(echo $needed)"
  for name in $needed; do
    case "$name" in
      *nibble* | *LLVM* | *llvm* | *python* | *cuda*) echo "  unexpected dependency: $name"; status=1 ;;
    esac
  done
  if ldd "$binary" | grep -Ei 'nibble|llvm|python'; then
    echo "  unexpected dependency in ldd"
    status=1
  fi
done

exported=$(nm -D --defined-only "$library" | awk '$2 == "T" { print $3 }' | sort)
expected=$(for symbol in "$@"; do echo "$symbol"; done | sort)
if [ "$exported" != "$expected" ]; then
  echo "exported functions differ from the header's:"
  echo "  exported: $(echo $exported)"
  echo "  expected: $(echo $expected)"
  status=1
else
  echo "exports: $(echo $exported)"
fi
exit $status
