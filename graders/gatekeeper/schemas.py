"""The Engine API as the gatekeeper accepts it: request bodies and query parameters by endpoint.

Bodies follow the daemon's Go structs (API 1.41 to 1.45) field by field, so a field the daemon
reads is decoded here under the same name; ``policy`` and ``rules`` then judge the values. A
field or parameter missing from these tables is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fields import (
    UINT,
    Bool,
    BoolParam,
    Empty,
    Filters,
    Int,
    IntParam,
    JsonParam,
    ListOf,
    ListParam,
    MapOf,
    Query,
    Str,
    Struct,
    TextParam,
)

STRINGS = ListOf(Str())
STR_SLICE = ListOf(Str(), single=True)
LABELS = MapOf(Str())
DURATION = Int()

HEALTHCHECK = Struct({"Test": STRINGS, "Interval": DURATION, "Timeout": DURATION,
                      "StartPeriod": DURATION, "StartInterval": DURATION, "Retries": Int()})

#: container.Config: the top level of a create body, and of a commit's.
CONFIG = {
    "Hostname": Str(), "Domainname": Str(), "User": Str(), "AttachStdin": Bool(),
    "AttachStdout": Bool(), "AttachStderr": Bool(), "ExposedPorts": MapOf(Empty()),
    "Tty": Bool(), "OpenStdin": Bool(), "StdinOnce": Bool(), "Env": STRINGS, "Cmd": STR_SLICE,
    "Healthcheck": HEALTHCHECK, "ArgsEscaped": Bool(), "Image": Str(), "Volumes": MapOf(Empty()),
    "WorkingDir": Str(), "Entrypoint": STR_SLICE, "NetworkDisabled": Bool(), "MacAddress": Str(),
    "OnBuild": STRINGS, "Labels": LABELS, "StopSignal": Str(), "StopTimeout": Int(),
    "Shell": STR_SLICE,
}

THROTTLE = ListOf(Struct({"Path": Str(), "Rate": Int(*UINT)}))
RESOURCES = {
    "CpuShares": Int(), "Memory": Int(), "NanoCpus": Int(), "CgroupParent": Str(),
    "BlkioWeight": Int(0, 2**16 - 1),
    "BlkioWeightDevice": ListOf(Struct({"Path": Str(), "Weight": Int(0, 2**16 - 1)})),
    "BlkioDeviceReadBps": THROTTLE, "BlkioDeviceWriteBps": THROTTLE,
    "BlkioDeviceReadIOps": THROTTLE, "BlkioDeviceWriteIOps": THROTTLE,
    "CpuPeriod": Int(), "CpuQuota": Int(), "CpuRealtimePeriod": Int(),
    "CpuRealtimeRuntime": Int(), "CpusetCpus": Str(), "CpusetMems": Str(),
    "Devices": ListOf(Struct({"PathOnHost": Str(), "PathInContainer": Str(),
                              "CgroupPermissions": Str()})),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": ListOf(Struct({"Driver": Str(), "Count": Int(), "DeviceIDs": STRINGS,
                                     "Capabilities": ListOf(STRINGS),
                                     "Options": LABELS})),
    "KernelMemory": Int(), "KernelMemoryTCP": Int(), "MemoryReservation": Int(),
    "MemorySwap": Int(), "MemorySwappiness": Int(), "OomKillDisable": Bool(),
    "PidsLimit": Int(), "Ulimits": ListOf(Struct({"Name": Str(), "Hard": Int(), "Soft": Int()})),
    "CpuCount": Int(), "CpuPercent": Int(), "IOMaximumIOps": Int(*UINT),
    "IOMaximumBandwidth": Int(*UINT),
}

MOUNT = Struct({
    "Type": Str(), "Source": Str(), "Target": Str(), "ReadOnly": Bool(), "Consistency": Str(),
    "BindOptions": Struct({"Propagation": Str(), "NonRecursive": Bool(),
                           "CreateMountpoint": Bool(), "ReadOnlyNonRecursive": Bool(),
                           "ReadOnlyForceRecursive": Bool()}),
    "VolumeOptions": Struct({"NoCopy": Bool(), "Labels": LABELS, "Subpath": Str(),
                             "DriverConfig": Struct({"Name": Str(), "Options": LABELS})}),
    "TmpfsOptions": Struct({"SizeBytes": Int(), "Mode": Int(0, 2**32 - 1),
                            "Options": ListOf(STRINGS)}),
})

PORT_BINDINGS = MapOf(ListOf(Struct({"HostIp": Str(), "HostPort": Str()})))
HOST_CONFIG = Struct({
    "Binds": STRINGS, "ContainerIDFile": Str(),
    "LogConfig": Struct({"Type": Str(), "Config": LABELS}),
    "NetworkMode": Str(), "PortBindings": PORT_BINDINGS,
    "RestartPolicy": Struct({"Name": Str(), "MaximumRetryCount": Int()}),
    "AutoRemove": Bool(), "VolumeDriver": Str(), "VolumesFrom": STRINGS,
    "ConsoleSize": ListOf(Int(*UINT)), "Annotations": LABELS, "CapAdd": STR_SLICE,
    "CapDrop": STR_SLICE, "CgroupnsMode": Str(), "Dns": STRINGS, "DnsOptions": STRINGS,
    "DnsSearch": STRINGS, "ExtraHosts": STRINGS, "GroupAdd": STRINGS, "IpcMode": Str(),
    "Cgroup": Str(), "Links": STRINGS, "OomScoreAdj": Int(), "PidMode": Str(),
    "Privileged": Bool(), "PublishAllPorts": Bool(), "ReadonlyRootfs": Bool(),
    "SecurityOpt": STRINGS, "StorageOpt": LABELS, "Tmpfs": LABELS, "UTSMode": Str(),
    "UsernsMode": Str(), "ShmSize": Int(), "Sysctls": LABELS, "Runtime": Str(),
    "Isolation": Str(), **RESOURCES, "Mounts": ListOf(MOUNT), "MaskedPaths": STRINGS,
    "ReadonlyPaths": STRINGS, "Init": Bool(),
})

ENDPOINT = Struct({
    "IPAMConfig": Struct({"IPv4Address": Str(), "IPv6Address": Str(),
                          "LinkLocalIPs": STRINGS}),
    "Links": STRINGS, "Aliases": STRINGS, "MacAddress": Str(), "NetworkID": Str(),
    "EndpointID": Str(), "Gateway": Str(), "IPAddress": Str(), "IPPrefixLen": Int(),
    "IPv6Gateway": Str(), "GlobalIPv6Address": Str(), "GlobalIPv6PrefixLen": Int(),
    "DriverOpts": LABELS, "DNSNames": STRINGS,
})
#: docker-py's ``containers.run(network=name)`` sends {name: null} here, which the daemon ignores.
NETWORKING = Struct({"EndpointsConfig": MapOf(ENDPOINT)}, unknown_null=True)

#: A create body: container.Config at the top, the host's settings inside ``HostConfig`` only
#: (the daemon also reads them at the top level, a form the gatekeeper does not accept).
CONTAINER_CREATE = Struct({**CONFIG, "HostConfig": HOST_CONFIG, "NetworkingConfig": NETWORKING})
COMMIT_CONFIG = Struct(CONFIG)
UPDATE = Struct({**RESOURCES, "RestartPolicy": HOST_CONFIG.fields["RestartPolicy"]})

EXEC_CREATE = Struct({
    "User": Str(), "Privileged": Bool(), "Tty": Bool(), "ConsoleSize": ListOf(Int(*UINT)),
    "AttachStdin": Bool(), "AttachStderr": Bool(), "AttachStdout": Bool(), "Detach": Bool(),
    "DetachKeys": Str(), "Env": STRINGS, "WorkingDir": Str(), "Cmd": STR_SLICE,
    # docker-py names the container in the body too; the daemon takes it from the path.
    "Container": Str(),
})
EXEC_START = Struct({"Detach": Bool(), "Tty": Bool(), "ConsoleSize": ListOf(Int(*UINT))})

VOLUME_CREATE = Struct({"Name": Str(), "Driver": Str(), "DriverOpts": LABELS,
                        "Labels": LABELS})

IPAM = Struct({"Driver": Str(), "Options": LABELS,
               "Config": ListOf(Struct({"Subnet": Str(), "IPRange": Str(), "Gateway": Str(),
                                        "AuxiliaryAddresses": LABELS}))})
NETWORK_CREATE = Struct({
    "Name": Str(), "CheckDuplicate": Bool(), "Driver": Str(), "Scope": Str(),
    "EnableIPv6": Bool(), "EnableIPv4": Bool(), "IPAM": IPAM, "Internal": Bool(),
    "Attachable": Bool(), "Ingress": Bool(), "ConfigOnly": Bool(),
    "ConfigFrom": Struct({"Network": Str()}), "Options": LABELS, "Labels": LABELS,
})
NETWORK_CONNECT = Struct({"Container": Str(), "EndpointConfig": ENDPOINT})
NETWORK_DISCONNECT = Struct({"Container": Str(), "Force": Bool()})

AUTH = Struct({"username": Str(), "password": Str(), "auth": Str(), "email": Str(),
               "serveraddress": Str(), "identitytoken": Str(), "registrytoken": Str()})

FILTERS = JsonParam(Filters())


# -- endpoints ---------------------------------------------------------------------------------

#: How an endpoint's request body is read: not at all, as JSON, or streamed to the daemon.
STREAM = "stream"
CONTEXT = "build context"
MAX_STREAM = 1024 * 2**20


@dataclass(frozen=True)
class Endpoint:
    """What one endpoint accepts: its query parameters and how its body is read."""

    query: Query = field(default_factory=Query)
    #: None (no body), a ``Kind`` (a JSON body decoded against it), STREAM or CONTEXT.
    body: object = None
    #: The Content-Type the daemon is given for the body (the client's is never passed on).
    content_type: str = "application/json"
    #: attach and exec start: the connection may become a raw stream once the daemon says 101.
    hijack: bool = False


def _query(**params) -> Query:
    return Query(params)


B, T, L, N = BoolParam(), TextParam(), ListParam(), IntParam()
LOGS = dict(follow=B, stdout=B, stderr=B, timestamps=B, details=B, since=T, until=T, tail=T)
REMOVE = dict(v=B, force=B, link=B)
TIMEOUT = dict(t=N, signal=T)
TAR = "application/x-tar"

PING = Endpoint()
CREATE_CONTAINER = Endpoint(_query(name=T, platform=T), CONTAINER_CREATE)
LIST_CONTAINERS = Endpoint(_query(all=B, size=B, limit=N, since=T, before=T, filters=FILTERS,
                                  trunc_cmd=B))
PRUNE = Endpoint(_query(filters=FILTERS))
UPDATE_CONTAINER = Endpoint(Query(), UPDATE)
CREATE_EXEC = Endpoint(Query(), EXEC_CREATE)
START_EXEC = Endpoint(Query(), EXEC_START, hijack=True)
RESIZE = Endpoint(_query(h=N, w=N))
CONTAINER_ACTIONS = {
    "": Endpoint(_query(**REMOVE)),
    "/json": Endpoint(_query(size=B)),
    "/logs": Endpoint(_query(**LOGS)),
    "/start": Endpoint(_query(detachKeys=T)),
    "/stop": Endpoint(_query(**TIMEOUT)),
    "/restart": Endpoint(_query(**TIMEOUT)),
    "/kill": Endpoint(_query(signal=T)),
    "/wait": Endpoint(_query(condition=T)),
    "/pause": PING, "/unpause": PING, "/changes": PING, "/export": PING,
    "/top": Endpoint(_query(ps_args=T)),
    "/stats": Endpoint(_query(stream=B, **{"one-shot": B})),
    "/resize": RESIZE,
    "/attach": Endpoint(_query(logs=B, stream=B, stdin=B, stdout=B, stderr=B, detachKeys=T),
                        hijack=True),
    "/archive": Endpoint(_query(path=T, noOverwriteDirNonDir=B, copyUIDGID=B), STREAM, TAR),
    "/rename": Endpoint(_query(name=T)),
}
LIST_IMAGES = Endpoint(_query(all=B, filters=FILTERS, filter=T, digests=B, only_ids=B,
                              **{"shared-size": B}))
CREATE_IMAGE = Endpoint(_query(fromImage=T, fromSrc=T, repo=T, tag=T, message=T, changes=L,
                               platform=T), STREAM, TAR)
LOAD_IMAGES = Endpoint(_query(quiet=B), STREAM, TAR)
SAVE_IMAGES = Endpoint(_query(names=L))
TAG_IMAGE = Endpoint(_query(repo=T, tag=T, force=B))
#: Without X-Registry-Auth the daemon reads the credentials from the body (docker-py sends {}).
PUSH_IMAGE = Endpoint(_query(tag=T), AUTH)
READ_IMAGE = PING
REMOVE_IMAGE = Endpoint(_query(force=B, noprune=B))
BUILD = Endpoint(_query(
    t=L, dockerfile=T, q=B, nocache=B, rm=B, forcerm=B, pull=B, buildargs=JsonParam(MapOf(Str())),
    labels=JsonParam(LABELS), cachefrom=JsonParam(STRINGS), target=T, networkmode=T,
    shmsize=N, memory=N, memswap=N, cpushares=N, cpusetcpus=T, cpusetmems=T, cpuperiod=N,
    cpuquota=N, extrahosts=L, platform=T, squash=B, isolation=T, cgroupparent=T, remote=T,
    version=T, ulimits=T, session=T, buildid=T, outputs=T, securityopt=L,
), CONTEXT, TAR)
COMMIT = Endpoint(_query(container=T, repo=T, tag=T, comment=T, author=T, pause=B, changes=L),
                  COMMIT_CONFIG)
LIST_VOLUMES = Endpoint(_query(filters=FILTERS))
CREATE_VOLUME = Endpoint(Query(), VOLUME_CREATE)
VOLUME = Endpoint(_query(force=B))
LIST_NETWORKS = Endpoint(_query(filters=FILTERS))
CREATE_NETWORK = Endpoint(Query(), NETWORK_CREATE)
CONNECT_NETWORK = Endpoint(Query(), NETWORK_CONNECT)
DISCONNECT_NETWORK = Endpoint(Query(), NETWORK_DISCONNECT)
NETWORK = Endpoint(_query(verbose=B, scope=T))
EVENTS = Endpoint(_query(since=T, until=T, filters=FILTERS))
DISK_USAGE = Endpoint(_query(type=L))
LOGIN = Endpoint(Query(), AUTH)
