#!/bin/sh
# build_jar.sh JAVAC JAR SERVER_JAR LINUX_SANDBOX OUT SRC...
#
# Compiles Bazel's remote worker (Debian's bazel-bootstrap-source, src/tools/remote)
# into OUT, a jar that also carries linux-sandbox at main/tools/linux-sandbox,
# where the worker's --sandboxing looks for it. The one change to the source:
# upstream listens on every interface (NettyServerBuilder.forPort, and
# ServerBootstrap.bind(port) for its optional HTTP cache); here both listen on
# the address in the system property knlp.listen_address, 127.0.0.1 by default.
set -eu
javac=$1 jar=$2 server_jar=$3 sandbox=$4 out=$5
shift 5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src" "$tmp/classes"
srcs=
for src in "$@"; do
  case "$src" in
    */RemoteWorker.java) main=$src ;;
    *) srcs="$srcs $src" ;;
  esac
done
[ -n "${main:-}" ] || { echo "build_jar.sh: no RemoteWorker.java among the sources" >&2; exit 1; }
address='System.getProperty("knlp.listen_address", "127.0.0.1")'
sed -e "s/NettyServerBuilder\.forPort(workerOptions\.listenPort)/NettyServerBuilder.forAddress(new java.net.InetSocketAddress($address, workerOptions.listenPort))/" \
    -e "s/b\.bind(remoteWorkerOptions\.httpListenPort)/b.bind($address, remoteWorkerOptions.httpListenPort)/" \
    "$main" > "$tmp/src/RemoteWorker.java"
# Both substitutions must have applied, and no other wildcard bind may remain.
if [ "$(grep -c 'knlp.listen_address' "$tmp/src/RemoteWorker.java")" != 2 ] ||
   grep -q 'forPort(' "$tmp/src/RemoteWorker.java"; then
  echo "build_jar.sh: $main no longer has the two binds this script rewrites to loopback;" >&2
  echo "  update the substitutions in containers/remote/build_jar.sh" >&2
  exit 1
fi
# shellcheck disable=SC2086
"$javac" -proc:none -nowarn -encoding UTF-8 -cp "$server_jar" -d "$tmp/classes" \
  "$tmp/src/RemoteWorker.java" $srcs 2>"$tmp/javac.log" || { cat "$tmp/javac.log" >&2; exit 1; }
mkdir -p "$tmp/classes/main/tools"
cp "$sandbox" "$tmp/classes/main/tools/linux-sandbox"
chmod 755 "$tmp/classes/main/tools/linux-sandbox"
# A fixed date makes the jar the same bytes on every build.
"$jar" --create --date=1980-01-01T00:00:02Z --file "$out" -C "$tmp/classes" .
