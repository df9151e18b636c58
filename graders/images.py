"""The course images, under the names a learner would pull, provided even without internet.

An image already here is used as is; a missing one is pulled, with a short limit on silence; if
that fails it is built from Debian's binaries (busybox-static, docker-registry) laid out like the
official image. Built images carry the provisioned label, so cleanups spare them, and a recipe
label, so an image built by an older version of this module is rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import docker
from docker import auth
from docker.errors import APIError, BuildError, ImageNotFound
from docker.utils import parse_repository_tag
from requests.exceptions import RequestException

from .apt import apt_install
from .errors import ImageUnavailable
from .settings import BUSYBOX_IMAGE, COURSE_IMAGES, PROVISIONED_LABEL, REGISTRY_IMAGE

#: Label on built images: a digest of the recipe below, so a changed recipe means a rebuild.
RECIPE_LABEL = "org.docker-course.recipe"

#: Where Debian's packages put the binaries the images are built from.
BUSYBOX_BINARY = Path("/bin/busybox")  # busybox-static (busybox's dynamic one works too)
REGISTRY_BINARY = Path("/usr/bin/docker-registry")  # docker-registry

Step = Callable[[str], None]

# The official busybox image's accounts, plus nothing: exercises rely on root, nobody, www-data.
PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""

# Debian's busybox-static leaves out adduser and addgroup, which Dockerfile exercises use
# (`addgroup -S app && adduser -S -G app app`): these scripts follow BusyBox's options and id
# ranges. Passwords are never set, as with -D, since a build has no one to type them.
ADDUSER = r"""#!/bin/sh
usage() {
	echo "Usage: adduser [-h DIR] [-g GECOS] [-s SHELL] [-G GRP] [-SDH] [-u UID] [-k SKEL]" \
		"USER [GROUP]" >&2
	exit 1
}
die() { echo "adduser: $*" >&2; exit 1; }
taken() { awk -F: -v id="$1" '$3 == id { found = 1 } END { exit !found }' "$2"; }
home= gecos="Linux User,,," shell=/bin/sh shell_set= group= system= nohome= uid= skel=
while getopts h:g:s:G:SDHu:k: opt; do
	case $opt in
	h) home=$OPTARG ;;
	g) gecos=$OPTARG ;;
	s) shell=$OPTARG shell_set=1 ;;
	G) group=$OPTARG ;;
	S) system=1 ;;
	D) ;;
	H) nohome=1 ;;
	u) uid=$OPTARG ;;
	k) skel=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || [ $# -eq 2 ] || usage
user=$1
[ $# -eq 2 ] && exec addgroup "$user" "$2"
grep -q "^$user:" /etc/passwd && die "user '$user' in use"
lo=1000 hi=64999
if [ -n "$system" ]; then
	lo=100 hi=999
	[ -n "$group" ] || group=nogroup
	[ -n "$shell_set" ] || shell=/bin/false
fi
own_group=
[ -n "$group" ] || own_group=1
if [ -n "$uid" ]; then
	taken "$uid" /etc/passwd && die "uid '$uid' in use"
else
	uid=$(awk -F: -v lo="$lo" -v hi="$hi" -v own="$own_group" '
		FILENAME == "/etc/passwd" || own { used[$3] = 1 }
		END { for (i = lo; i <= hi; i++) if (!(i in used)) { print i; exit } }
	' /etc/passwd /etc/group)
	[ -n "$uid" ] || die "no uids left"
fi
if [ -n "$own_group" ]; then
	addgroup -g "$uid" "$user" || exit 1
	gid=$uid
else
	gid=$(awk -F: -v g="$group" '$1 == g { print $3 }' /etc/group)
	[ -n "$gid" ] || die "unknown group $group"
fi
[ -n "$home" ] || home=/home/$user
echo "$user:x:$uid:$gid:$gecos:$home:$shell" >> /etc/passwd
[ -n "$own_group" ] || addgroup "$user" "$group" || exit 1
if [ -z "$nohome" ]; then
	mkdir -p "$home"
	[ -z "$skel" ] || cp -a "$skel/." "$home"
	chown -R "$uid:$gid" "$home"
fi
"""

ADDGROUP = r"""#!/bin/sh
usage() { echo "Usage: addgroup [-g GID] [-S] [USER] GROUP" >&2; exit 1; }
die() { echo "addgroup: $*" >&2; exit 1; }
taken() { awk -F: -v id="$1" '$3 == id { found = 1 } END { exit !found }' "$2"; }
gid= system=
while getopts g:S opt; do
	case $opt in
	g) gid=$OPTARG ;;
	S) system=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -eq 2 ]; then
	user=$1 group=$2
	grep -q "^$user:" /etc/passwd || die "unknown user $user"
	grep -q "^$group:" /etc/group || die "unknown group $group"
	awk -F: -v u="$user" -v g="$group" '
		$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) found = 1 }
		END { exit !found }' /etc/group && exit 0
	awk -F: -v OFS=: -v u="$user" -v g="$group" '
		$1 == g { $4 = ($4 == "" ? u : $4 "," u) } { print }' /etc/group > /etc/group.new
	cat /etc/group.new > /etc/group && rm /etc/group.new
	exit
fi
[ $# -eq 1 ] || usage
group=$1
grep -q "^$group:" /etc/group && die "group '$group' in use"
if [ -n "$gid" ]; then
	taken "$gid" /etc/group && die "gid '$gid' in use"
else
	lo=1000 hi=64999
	[ -z "$system" ] || { lo=100 hi=999; }
	gid=$(awk -F: -v lo="$lo" -v hi="$hi" '{ used[$3] = 1 }
		END { for (i = lo; i <= hi; i++) if (!(i in used)) { print i; exit } }' /etc/group)
	[ -n "$gid" ] || die "no gids left"
fi
echo "$group:x:$gid:" >> /etc/group
"""

BUSYBOX_DOCKERFILE = """\
FROM scratch
ADD rootfs.tar /
CMD ["sh"]
"""

# The official registry:2 configuration, with deletion enabled so cleanup exercises work;
# REGISTRY_AUTH=htpasswd and friends still switch authentication on through the environment.
REGISTRY_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

# The official image's entrypoint, so `docker run registry:2 garbage-collect …` works the same.
REGISTRY_ENTRYPOINT = """\
#!/bin/sh
set -e

case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac

exec "$@"
"""

REGISTRY_DOCKERFILE = """\
FROM scratch
ADD rootfs.tar /
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/entrypoint.sh"]
CMD ["/etc/docker/registry/config.yml"]
"""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


BUSYBOX_RECIPE = _digest(BUSYBOX_DOCKERFILE, PASSWD, GROUP, ADDUSER, ADDGROUP)
REGISTRY_RECIPE = _digest(REGISTRY_DOCKERFILE, REGISTRY_CONFIG, REGISTRY_ENTRYPOINT, BUSYBOX_RECIPE)


@dataclass(frozen=True)
class ImageResult:
    """How one course image came to be available."""

    name: str
    how: str  # "present" | "pulled" | "built"
    id: str
    seconds: float


class _Tree:
    """An in-memory tar of a root filesystem: every entry root-owned, with a fixed mtime.

    The fixed mtime makes identical inputs give an identical tar, which the builder caches.
    """

    MTIME = 1_600_000_000

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.GNU_FORMAT)
        self._paths: set[str] = set()

    def _add(self, path: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
        name = str(PurePosixPath(path.lstrip("/")))
        if name in self._paths:
            return
        parent = str(PurePosixPath(name).parent)
        if parent != ".":
            self.directory(parent)
        self._paths.add(name)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.linkname = kind, mode, self.MTIME, link
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data) if data else None)

    def directory(self, path: str, mode: int = 0o755) -> None:
        self._add(path, tarfile.DIRTYPE, mode)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._add(path, tarfile.REGTYPE, mode, data)

    def hardlink(self, path: str, target: str) -> None:
        self._add(path, tarfile.LNKTYPE, 0o755, link=target.lstrip("/"))

    def binary(self, host: Path, inside: str) -> None:
        """Copy an executable and the shared libraries it loads, at the paths ``ldd`` names."""
        if not host.exists():
            raise ImageUnavailable(
                f"{host} is missing: the image is built from it.",
                "Run `course images` as root (it installs the Debian package), or install "
                "busybox-static and docker-registry with apt-get.",
            )
        self.file(inside, host.read_bytes(), 0o755)
        for library in shared_libraries(host):
            self.file(str(library), library.resolve().read_bytes(), 0o755)

    def getvalue(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries ``binary`` loads, loader included, as ``ldd`` lists them; none if static."""
    try:
        result = subprocess.run(
            ["ldd", str(binary)], capture_output=True, text=True, timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ImageUnavailable(f"Cannot list the libraries of {binary}: {error}") from None
    if result.returncode != 0:  # "not a dynamic executable"
        return []
    libraries = []
    for line in result.stdout.splitlines():
        if "not found" in line:
            raise ImageUnavailable(f"{binary} needs a library that is missing here: {line.strip()}")
        # "libc.so.6 => /lib/…/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        paths = [word for word in line.split() if word.startswith("/")]
        if paths:
            libraries.append(Path(paths[0]))
    return libraries


def _busybox_tree() -> _Tree:
    """The official busybox image's layout: one binary, every applet linked to it in /bin."""
    tree = _Tree()
    for path in ("bin", "dev", "etc", "home", "usr/sbin", "var/spool/mail", "var/www"):
        tree.directory(path)
    tree.directory("root", 0o700)
    tree.directory("tmp", 0o1777)
    tree.binary(BUSYBOX_BINARY, "bin/busybox")
    try:
        listing = subprocess.run(
            [str(BUSYBOX_BINARY), "--list"], capture_output=True, text=True, timeout=10,
            check=True, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise ImageUnavailable(f"Cannot list the applets of {BUSYBOX_BINARY}: {error}") from None
    for applet in listing.stdout.split():
        if applet != "busybox":
            tree.hardlink(f"bin/{applet}", "bin/busybox")
    tree.file("bin/adduser", ADDUSER.encode(), 0o755)
    tree.file("bin/addgroup", ADDGROUP.encode(), 0o755)
    tree.file("etc/passwd", PASSWD.encode())
    tree.file("etc/group", GROUP.encode())
    return tree


def build_busybox(client: docker.DockerClient, tag: str) -> str:
    """Build the busybox image from the host's busybox under ``tag``; return its id."""
    return _build(client, tag, BUSYBOX_DOCKERFILE, _busybox_tree(), BUSYBOX_RECIPE)


def build_registry(client: docker.DockerClient, tag: str) -> str:
    """Build the registry image from Debian's docker-registry under ``tag``; return its id.

    It carries busybox too (for `sh`, `wget` in probes) and depends on no other image's tag.
    """
    tree = _busybox_tree()
    tree.binary(REGISTRY_BINARY, "bin/registry")
    tree.file("etc/docker/registry/config.yml", REGISTRY_CONFIG.encode())
    tree.file("entrypoint.sh", REGISTRY_ENTRYPOINT.encode(), 0o755)
    tree.directory("var/lib/registry")
    return _build(client, tag, REGISTRY_DOCKERFILE, tree, REGISTRY_RECIPE)


def _build(
    client: docker.DockerClient, tag: str, dockerfile: str, tree: _Tree, recipe: str
) -> str:
    """Send a context of the Dockerfile and the tree as rootfs.tar; raise with the log's tail."""
    context = _Tree()
    context.file("Dockerfile", dockerfile.encode())
    context.file("rootfs.tar", tree.getvalue())
    labels = {PROVISIONED_LABEL: tag, RECIPE_LABEL: recipe}
    try:
        image, _log = client.images.build(
            fileobj=io.BytesIO(context.getvalue()), custom_context=True, rm=True, forcerm=True,
            labels=labels, tag=tag,
        )
    except BuildError as error:
        lines = "".join(
            entry.get("stream") or entry.get("error") or "" for entry in error.build_log
        )
        tail = "\n".join(lines.strip().splitlines()[-10:])
        raise ImageUnavailable(f"Building {tag} failed: {error.msg}\n{tail}") from None
    except (APIError, RequestException) as error:
        raise ImageUnavailable(f"Building {tag} failed: {error}") from None
    return image.id


#: For each course image: how to build it, its recipe digest, and the Debian packages it needs.
_RECIPES: dict[str, tuple[Callable[[docker.DockerClient, str], str], str, dict[str, Path]]] = {
    BUSYBOX_IMAGE: (build_busybox, BUSYBOX_RECIPE, {"busybox-static": BUSYBOX_BINARY}),
    REGISTRY_IMAGE: (
        build_registry,
        REGISTRY_RECIPE,
        {"busybox-static": BUSYBOX_BINARY, "docker-registry": REGISTRY_BINARY},
    ),
}


def _state(client: docker.DockerClient, name: str) -> tuple[str, str]:
    """The image's state (see ``image_state``) and its id, empty if it is missing."""
    try:
        image = client.images.get(name)
    except ImageNotFound:
        return "missing", ""
    labels = image.labels or {}
    if PROVISIONED_LABEL in labels and labels.get(RECIPE_LABEL) != _RECIPES[name][1]:
        return "outdated", image.id
    return "present", image.id


def image_state(client: docker.DockerClient, name: str) -> str:
    """"present", "missing", or "outdated" (built here by an older recipe: to be rebuilt).

    Images without the provisioned label were pulled (or made by the learner): always current.
    """
    return _state(client, name)[0]


def missing_images(client: docker.DockerClient) -> list[str]:
    """The course images that ``ensure_images`` would have to pull or build."""
    return [name for name in COURSE_IMAGES if image_state(client, name) != "present"]


def pull_image(client: docker.DockerClient, name: str, timeout: float = 20) -> str:
    """Pull ``name`` and return its id, giving up after ``timeout`` seconds without progress.

    docker-py's own pull waits forever (it passes no timeout), so the request is made here.
    """
    repository, tag = parse_repository_tag(name)
    api = client.api
    headers = {}
    header = auth.get_config_header(api, auth.resolve_repository_name(repository)[0])
    if header:
        headers["X-Registry-Auth"] = header
    url = f"{api.base_url}/v{api.api_version}/images/create"
    params = {"fromImage": repository, "tag": tag or "latest"}
    try:
        with api.post(url, params=params, headers=headers, stream=True, timeout=timeout) as reply:
            if reply.status_code >= 400:
                raise ImageUnavailable(f"Pulling {name} failed: {_api_message(reply.text)}")
            for line in reply.iter_lines():
                event = json.loads(line) if line.strip() else {}
                if "error" in event:
                    raise ImageUnavailable(f"Pulling {name} failed: {event['error']}")
    except RequestException as error:
        silent = "timed out" in str(error)
        reason = f"no progress for {timeout:g} s" if silent else str(error)
        raise ImageUnavailable(f"Pulling {name} failed: {reason}") from None
    return client.images.get(name).id


def _api_message(body: str) -> str:
    try:
        return json.loads(body).get("message", body).strip()
    except ValueError:
        return body.strip()


def _install_packages(name: str, packages: dict[str, Path], why: str, step: Step) -> None:
    """Install the Debian packages whose binaries are missing, or say which to install."""
    missing = [package for package, binary in packages.items() if not binary.exists()]
    if not missing:
        return
    names = " ".join(missing)
    can_install = sys.platform == "linux" and os.geteuid() == 0 and shutil.which("apt-get")
    if not can_install:
        raise ImageUnavailable(
            f"Cannot provide {name}: {why}, and building it needs Debian's {names}.",
            f"Install it (`sudo apt-get install {names}`) and run `course images` again, "
            "or run it where the image can be pulled.",
        )
    step(f"{name}: installing {names} with apt-get")
    apt_install(missing, ImageUnavailable, step)


def ensure_image(
    client: docker.DockerClient, name: str, on_step: Step | None = None, pull_timeout: float = 20
) -> ImageResult:
    """Make course image ``name`` available: keep it, else pull it, else build it."""
    step = on_step or (lambda _message: None)
    began = time.monotonic()
    state, existing = _state(client, name)
    if state == "present":
        return ImageResult(name, "present", existing, time.monotonic() - began)
    step(f"{name}: {state}; pulling it")
    try:
        image_id = pull_image(client, name, pull_timeout)
        how = "pulled"
    except ImageUnavailable as error:
        build, _recipe, packages = _RECIPES[name]
        step(f"{error.message}; building {name} from Debian packages")
        _install_packages(name, packages, error.message, step)
        image_id = build(client, name)
        how = "built"
    if existing and existing != image_id:
        _remove_quietly(client, existing)
    return ImageResult(name, how, image_id, time.monotonic() - began)


def _remove_quietly(client: docker.DockerClient, image_id: str) -> None:
    """Remove a superseded image so it does not linger untagged; leave it if still in use."""
    try:
        client.images.remove(image_id)
    except APIError:
        pass


def ensure_images(
    client: docker.DockerClient, on_step: Step | None = None, pull_timeout: float = 20
) -> list[ImageResult]:
    """Make every course image available; fast when they already are (one inspect each)."""
    return [ensure_image(client, name, on_step, pull_timeout) for name in COURSE_IMAGES]
