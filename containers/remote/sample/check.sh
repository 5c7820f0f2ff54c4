#!/bin/sh
# check.sh FILE TEXT: passes when FILE has a line that is exactly TEXT.
grep -qx "$2" "$1" || { echo "expected a line '$2' in $1, got:"; cat "$1"; exit 1; }
