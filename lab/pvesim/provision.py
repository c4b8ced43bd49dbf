"""Creating guests on a simulated node without ssh (for tests and demos)."""
import random
import struct
import uuid

from .common import format_disk_size
from .host import Host, VmConfig

MIB = 1 << 20


def disk_chunk(rng_pool, mib_index, seed):
    """1 MiB of deterministic data: 64 KiB blocks of a 16-byte header (so no
    two blocks are equal), 32 KiB from a random pool, then zeros. Half zeros
    keep every compressor busy but effective; building it costs microseconds."""
    parts = []
    for block in range(16):
        n = mib_index * 16 + block
        off = (n * 40961) % (len(rng_pool) - 32768)
        parts.append(struct.pack("<QQ", seed, n) + rng_pool[off:off + 32768 - 16] + bytes(32768))
    return b"".join(parts)


def fill_disk(path, size, seed):
    rng_pool = random.Random(seed).randbytes(1 << 18)
    with open(path, "wb") as f:
        written = 0
        index = 0
        while written < size:
            chunk = disk_chunk(rng_pool, index, seed)[: size - written]
            f.write(chunk)
            written += len(chunk)
            index += 1


def create_vm(host: Host, vmid, name=None, disk_size=64 * MIB, disks=1, running=False,
              seed=None, storage="local-lvm", memory=2048, cores=2, onboot=False, agent=False):
    """Write a realistic qemu config plus filled disk images; return their real paths."""
    if host.vm_exists(vmid):
        raise ValueError(f"VM {vmid} already exists on node '{host.node}'")
    host.ensure_layout()
    seed = vmid if seed is None else seed
    rng = random.Random(seed)
    mac = "BC:24:11:" + ":".join(f"{rng.randint(0, 255):02X}" for _ in range(3))
    values = {
        **({"agent": "1"} if agent else {}),
        "boot": "order=scsi0;net0", "cores": str(cores), "cpu": "x86-64-v2-AES",
        "memory": str(memory), "meta": "creation-qemu=9.2.0,ctime=1732280000",
        "name": name or f"vm{vmid}", "net0": f"virtio={mac},bridge=vmbr0,firewall=1",
        "numa": "0", "ostype": "l26", "scsihw": "virtio-scsi-single", "sockets": "1",
        **({"onboot": "1"} if onboot else {}),
        "smbios1": f"uuid={uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "vmgenid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    }
    paths = []
    for n in range(disks):
        volid = host.allocate_volume(storage, vmid, 0)
        path = host.volume_path(volid)
        fill_disk(path, disk_size, seed * 1000 + n)
        values[f"scsi{n}"] = f"{volid},iothread=1,size={format_disk_size(disk_size)}"
        paths.append(path)
    host.write_config(vmid, VmConfig(values))
    host.set_running(vmid, running)
    return paths
