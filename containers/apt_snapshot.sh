#!/bin/sh
# Points apt at Debian's archive as it was at one snapshot (argument: the
# snapshot timestamp, e.g. 20251229T000000Z), so an image rebuilt later
# installs the same package versions.
set -eu
snapshot=${1:?usage: apt_snapshot.sh YYYYMMDDTHHMMSSZ}
case "$snapshot" in
  [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) ;;
  *) echo "apt_snapshot.sh: bad snapshot '$snapshot'; expected YYYYMMDDTHHMMSSZ" >&2; exit 2 ;;
esac
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
cat > /etc/apt/sources.list.d/debian.sources <<SOURCES
Types: deb
URIs: http://snapshot.debian.org/archive/debian/$snapshot
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://snapshot.debian.org/archive/debian-security/$snapshot
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/99knlp-snapshot
apt-get update -qq
