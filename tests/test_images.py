"""The course images, built for real under throwaway tags and exercised in real containers."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
from docker.errors import NotFound

from graders import images
from graders.daemon import docker_client
from graders.errors import ImageUnavailable
from graders.images import (
    BUSYBOX_DOCKERFILE,
    BUSYBOX_RECIPE,
    RECIPE_LABEL,
    build_busybox,
    build_registry,
    ensure_image,
    ensure_images,
    missing_images,
    pull_image,
    shared_libraries,
)
from graders.settings import COURSE_IMAGES, PROVISIONED_LABEL

TEST_LABEL = "org.docker-course.test"
#: bcrypt hash of "course-secret" (cost 4), for the registry's htpasswd authentication.
HTPASSWD = "learner:$2b$04$nGtYK/0BLvzByMq2Gzcl8.BV7AbSiR0de3Z6Ece9aDpIyZdufRjFa\n"



@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def run_id(client: docker.DockerClient) -> Iterator[str]:
    """A random suffix for this run's tags; everything labelled with it is removed at the end."""
    run_id = uuid.uuid4().hex[:10]
    yield run_id
    for container in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={run_id}"}):
        remove(container)
    for image in client.images.list():
        for tag in image.tags:
            if run_id in tag:
                client.images.remove(tag, force=True)
    assert [tag for image in client.images.list() for tag in image.tags if run_id in tag] == []


@pytest.fixture(scope="module")
def busybox(client: docker.DockerClient, run_id: str) -> str:
    tag = f"course-test/busybox:{run_id}"
    build_busybox(client, tag)
    return tag


@pytest.fixture(scope="module")
def registry(client: docker.DockerClient, run_id: str) -> str:
    tag = f"course-test/registry:{run_id}"
    build_registry(client, tag)
    return tag


def remove(container) -> None:
    """Remove a container and its anonymous volumes (the registry declares one), and check."""
    container.reload()
    volumes = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    container.remove(v=True, force=True)
    client = container.client
    for name in volumes:
        with pytest.raises(NotFound):
            client.volumes.get(name)


def run(client: docker.DockerClient, run_id: str, image: str, command: list[str], **kwargs) -> str:
    """Run a container to completion and return its output; it is removed whatever happens."""
    container = client.containers.create(image, command, labels={TEST_LABEL: run_id}, **kwargs)
    try:
        container.start()
        status = container.wait(timeout=30)
        output = container.logs().decode()
        assert status["StatusCode"] == 0, output
        return output
    finally:
        remove(container)


@pytest.mark.docker
def test_busybox_shell_and_accounts(client, run_id, busybox):
    output = run(client, run_id, busybox, ["sh", "-c", "id; echo ok; ls -ld /tmp"])
    lines = output.splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1] == "ok"
    assert lines[2].startswith("drwxrwxrwt")
    assert run(client, run_id, busybox, ["id"], user="www-data").startswith("uid=33(www-data)")
    assert run(client, run_id, busybox, ["id", "-u"], user="nobody").strip() == "65534"


@pytest.mark.docker
def test_busybox_default_command_is_sh(client, busybox):
    assert client.images.get(busybox).attrs["Config"]["Cmd"] == ["sh"]


@pytest.mark.docker
def test_busybox_adduser_and_addgroup(client, run_id, busybox):
    script = (
        "addgroup -S app && adduser -S -D -H -G app app && adduser -D -u 1000 learner"
        " && addgroup learner wheel && id app && id learner && stat -c %u:%g /home/learner"
    )
    app, learner, home = run(client, run_id, busybox, ["sh", "-c", script]).splitlines()
    assert app.startswith("uid=100(app) gid=101(app)")
    assert learner == "uid=1000(learner) gid=1000(learner) groups=1000(learner),10(wheel)"
    assert home == "1000:1000"


@pytest.mark.docker
def test_busybox_httpd_wget_nc(client, run_id, busybox):
    script = """
        mkdir -p /var/www/site && echo hello > /var/www/site/index.html
        httpd -f -p 8080 -h /var/www/site &
        echo pong | nc -l -p 9000 &
        retry() { for i in $(seq 50); do "$@" 2>/dev/null && return; sleep 0.1; done; return 1; }
        retry wget -qO- http://127.0.0.1:8080/ && retry nc 127.0.0.1 9000 </dev/null
    """
    assert run(client, run_id, busybox, ["sh", "-c", script]).split() == ["hello", "pong"]


@pytest.mark.docker
def test_images_carry_labels(client, busybox, registry):
    for tag in (busybox, registry):
        labels = client.images.get(tag).labels
        assert labels[PROVISIONED_LABEL] == tag
        assert labels[RECIPE_LABEL]


@pytest.mark.docker
def test_registry_layout_matches_official(client, registry):
    config = client.images.get(registry).attrs["Config"]
    assert config["Entrypoint"] == ["/entrypoint.sh"]
    assert config["Cmd"] == ["/etc/docker/registry/config.yml"]
    assert "/var/lib/registry" in config["Volumes"]
    assert "5000/tcp" in config["ExposedPorts"]


def test_libraries_come_from_ldd():
    libraries = shared_libraries(Path("/bin/sh"))
    assert any(path.name.startswith("libc.so") for path in libraries)
    assert any(path.name.startswith("ld-linux") for path in libraries)  # the loader too
    assert all(path.is_absolute() for path in libraries)


def start_registry(client, run_id, registry, **kwargs):
    """Start a registry on a 127.0.0.1 port the daemon picks; return the container and its URL."""
    container = client.containers.run(
        registry, detach=True, labels={TEST_LABEL: run_id},
        ports={"5000/tcp": ("127.0.0.1", None)}, **kwargs,
    )
    container.reload()
    port = container.ports["5000/tcp"][0]["HostPort"]
    return container, f"127.0.0.1:{port}"


def wait_for_status(url: str, status: int, **kwargs) -> requests.Response:
    deadline = time.monotonic() + 15
    while True:
        try:
            reply = requests.get(url, timeout=2, **kwargs)
            if reply.status_code == status:
                return reply
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        time.sleep(0.2)


@pytest.mark.docker
def test_registry_serves_push_and_pull(client, run_id, busybox, registry):
    container, address = start_registry(client, run_id, registry)
    try:
        wait_for_status(f"http://{address}/v2/", 200)
        exit_code, output = container.exec_run(["wget", "-qO-", "http://127.0.0.1:5000/v2/"])
        assert (exit_code, output.strip()) == (0, b"{}")

        remote = f"{address}/course-test/busybox:{run_id}"
        client.images.get(busybox).tag(remote)
        events = list(client.images.push(remote, stream=True, decode=True))
        assert not [event for event in events if "error" in event], events
        client.images.remove(remote)
        assert pull_image(client, remote, timeout=10) == client.images.get(busybox).id
        catalog = requests.get(f"http://{address}/v2/_catalog", timeout=5).json()
        assert catalog["repositories"] == ["course-test/busybox"]
    finally:
        remove(container)


@pytest.mark.docker
def test_registry_auth_from_environment(client, run_id, registry, tmp_path):
    (tmp_path / "htpasswd").write_text(HTPASSWD)
    container, address = start_registry(
        client, run_id, registry,
        volumes={str(tmp_path): {"bind": "/auth", "mode": "ro"}},
        environment={
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": "course",
            "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd",
        },
    )
    try:
        wait_for_status(f"http://{address}/v2/", 401)
        wait_for_status(f"http://{address}/v2/", 200, auth=("learner", "course-secret"))
    finally:
        remove(container)


@pytest.mark.docker
def test_pull_gives_up_on_a_silent_registry(client):
    with socket.socket() as silent:  # accepts connections (backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        began = time.monotonic()
        with pytest.raises(ImageUnavailable, match="no progress for 1 s"):
            pull_image(client, f"127.0.0.1:{silent.getsockname()[1]}/course-test/x:y", timeout=1)
        assert time.monotonic() - began < 5


@pytest.mark.docker
def test_pull_failure_is_an_image_error(client):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ImageUnavailable, match="Pulling"):
        pull_image(client, f"127.0.0.1:{port}/course-test/x:y", timeout=5)


@pytest.mark.docker
def test_ensure_images_twice(client):
    first = ensure_images(client)
    assert [result.name for result in first] == list(COURSE_IMAGES)
    assert all(result.how in ("present", "pulled", "built") for result in first)
    second = ensure_images(client)
    assert [result.how for result in second] == ["present"] * len(COURSE_IMAGES)
    assert [result.id for result in second] == [result.id for result in first]
    assert missing_images(client) == []



@pytest.mark.docker
def test_ensure_image_builds_keeps_and_replaces_outdated(client, run_id, monkeypatch):
    name = f"course-test/busybox:{run_id}-ensure"
    packages = {"busybox-static": images.BUSYBOX_BINARY}
    monkeypatch.setitem(images._RECIPES, name, (build_busybox, BUSYBOX_RECIPE, packages))
    built = ensure_image(client, name, pull_timeout=5)  # nothing to pull here: built
    assert built.how == "built"
    assert ensure_image(client, name).how == "present"

    def newer(client, tag):
        return images._build(client, tag, BUSYBOX_DOCKERFILE, images._busybox_tree(), "newer")

    monkeypatch.setitem(images._RECIPES, name, (newer, "newer", packages))
    assert images.image_state(client, name) == "outdated"
    rebuilt = ensure_image(client, name, pull_timeout=5)
    assert rebuilt.how == "built" and rebuilt.id != built.id
    with pytest.raises(NotFound):
        client.images.get(built.id)  # the superseded image does not linger untagged
    assert ensure_image(client, name).how == "present"


def test_missing_package_named_when_not_root(monkeypatch, tmp_path):
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(ImageUnavailable, match="busybox-static") as raised:
        images._install_packages("busybox:1.35.0", {"busybox-static": tmp_path / "none"},
                                 "pulling failed", lambda _message: None)
    assert "sudo apt-get install busybox-static" in raised.value.remedy


def test_missing_package_installed_when_root(monkeypatch, tmp_path):
    installed = []
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(images.shutil, "which", lambda _name: "/usr/bin/apt-get")
    monkeypatch.setattr(images, "apt_install", lambda names, *_args: installed.extend(names))
    present = tmp_path / "present"
    present.touch()
    images._install_packages(
        "registry:2", {"busybox-static": present, "docker-registry": tmp_path / "none"},
        "pulling failed", lambda _message: None,
    )
    assert installed == ["docker-registry"]


def test_build_without_host_binary_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "BUSYBOX_BINARY", tmp_path / "busybox")
    with pytest.raises(ImageUnavailable, match="busybox") as raised:
        build_busybox(None, "course-test/never:built")  # fails before talking to Docker
    assert "busybox-static" in raised.value.remedy
