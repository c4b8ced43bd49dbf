"""The HTTPS API: auth, envelopes, shapes, TLS fingerprint, and agreement with pvesh."""
import hashlib
import http.client
import json
import ssl
import unittest

from labfixture import Lab

lab = None


def setUpModule():
    global lab
    lab = Lab("dc1")
    lab.create_vm("dc1", 100, "--name", "web01", "--disk-size", "4M", "--running")


def tearDownModule():
    lab.close()


def request(path, auth=None, method="GET"):
    info = lab.hosts["dc1"]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the fingerprint is pinned in test_tls_fingerprint
    conn = http.client.HTTPSConnection(info["address"], info["api_port"], context=context, timeout=10)
    if auth is None:
        auth = f"PVEAPIToken={info['api_token_id']}={info['api_token_secret']}"
    conn.request(method, "/api2/json" + path, headers={"Authorization": auth} if auth else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.reason, body


def get(path):
    status, reason, body = request(path)
    assert status == 200, (status, reason, body)
    return json.loads(body)["data"]


class Auth(unittest.TestCase):
    def test_bad_or_missing_token_gets_empty_401(self):
        info = lab.hosts["dc1"]
        for auth in ("", f"PVEAPIToken={info['api_token_id']}=wrong",
                     f"PVEAPIToken=root@pam!other={info['api_token_secret']}"):
            status, _, body = request("/version", auth=auth)
            self.assertEqual((status, body), (401, b""))

    def test_space_instead_of_first_equals(self):
        info = lab.hosts["dc1"]
        status, _, _ = request("/version", auth=f"PVEAPIToken {info['api_token_id']}={info['api_token_secret']}")
        self.assertEqual(status, 200)

    def test_tls_fingerprint(self):
        info = lab.hosts["dc1"]
        pem = ssl.get_server_certificate((info["address"], info["api_port"]))
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
        self.assertEqual(":".join(digest[i:i + 2] for i in range(0, 64, 2)), info["tls_fingerprint"])
        self.assertEqual(get("/nodes")[0]["ssl_fingerprint"], info["tls_fingerprint"])


class Shapes(unittest.TestCase):
    def test_version(self):
        self.assertEqual(set(get("/version")), {"version", "release", "repoid"})

    def test_node_status(self):
        status = get("/nodes/dc1/status")
        self.assertIsInstance(status["cpu"], float)
        self.assertTrue(all(isinstance(x, str) for x in status["loadavg"]))
        for key in ("total", "used", "free", "available"):
            self.assertIsInstance(status["memory"][key], int)
        fs = status["rootfs"]
        self.assertEqual(fs["free"], fs["total"] - fs["used"])

    def test_node_status_hooks_and_services(self):
        lab.hook("dc1", "node-cpu", "0.93")
        lab.hook("dc1", "node-memory-total", str(64 << 30))
        lab.hook("dc1", "node-memory-used", str(60 << 30))
        lab.hook("dc1", "node-rootfs-total", str(100 << 30))
        lab.hook("dc1", "node-rootfs-used", str(95 << 30))
        lab.hook("dc1", "services-stopped", "pveproxy,pvestatd")
        try:
            status = get("/nodes/dc1/status")
            self.assertEqual(status["cpu"], 0.93)
            self.assertEqual(status["memory"]["used"], 60 << 30)
            self.assertEqual(status["rootfs"], {"total": 100 << 30, "used": 95 << 30,
                                                "avail": 5 << 30, "free": 5 << 30})
            states = {s["service"]: s["state"] for s in get("/nodes/dc1/services")}
            self.assertEqual((states["pveproxy"], states["pvestatd"], states["pvedaemon"]),
                             ("dead", "dead", "running"))
        finally:
            for name in ("node-cpu", "node-memory-total", "node-memory-used", "node-rootfs-total",
                         "node-rootfs-used", "services-stopped"):
                lab.clear_hook("dc1", name)

    def test_qemu_lists_follow_ssh_changes(self):
        vms = get("/nodes/dc1/qemu")
        self.assertEqual([(v["vmid"], v["name"], v["status"]) for v in vms], [(100, "web01", "running")])
        self.assertEqual(vms[0]["maxmem"], 2048 << 20)
        self.assertEqual(vms[0]["maxdisk"], 4 << 20)
        self.assertIn("pid", vms[0])
        lab.ssh("dc1", "qm stop 100")
        current = get("/nodes/dc1/qemu/100/status/current")
        self.assertEqual((current["status"], current["qmpstatus"], current["ha"]), ("stopped", "stopped", {"managed": 0}))
        self.assertNotIn("pid", current)
        lab.ssh("dc1", "qm start 100")
        resources = get("/cluster/resources?type=vm")
        self.assertEqual([(r["id"], r["type"], r["node"], r["status"]) for r in resources],
                         [("qemu/100", "qemu", "dc1", "running")])

    def test_missing_vm_and_unknown_node(self):
        status, reason, body = request("/nodes/dc1/qemu/999/status/current")
        self.assertEqual((status, reason), (500, "Configuration file 'nodes/dc1/qemu-server/999.conf' does not exist"))
        self.assertEqual(json.loads(body), {"data": None, "message":
                                            "Configuration file 'nodes/dc1/qemu-server/999.conf' does not exist\n"})
        status, _, body = request("/nodes/dc1/qemu/abc/status/current")
        self.assertEqual(status, 400)
        self.assertIn("vmid", json.loads(body)["errors"])
        self.assertEqual(request("/nodes/other/status")[0], 500)

    def test_storage(self):
        names = [s["storage"] for s in get("/nodes/dc1/storage")]
        self.assertEqual(names, ["local", "local-lvm"])
        backup = get("/nodes/dc1/storage?content=backup")
        self.assertEqual([s["storage"] for s in backup], ["local"])
        self.assertEqual(set(backup[0]), {"storage", "type", "content", "active", "enabled", "shared",
                                          "total", "used", "avail", "used_fraction"})

    def test_pvesh_answers_the_same(self):
        for path in ("/nodes/dc1/qemu", "/cluster/resources?type=vm", "/nodes/dc1/storage"):
            api_path, _, query = path.partition("?")
            args = f" --{query.replace('=', ' ')}" if query else ""
            result = lab.ssh("dc1", f"pvesh get {api_path}{args} --output-format json")
            self.assertEqual(result.returncode, 0, result.stderr)
            ssh_data, api_data = json.loads(result.stdout), get(path)
            for item in ssh_data + api_data:
                for volatile in ("uptime", "used", "avail", "used_fraction", "disk"):
                    item.pop(volatile, None)
            self.assertEqual(ssh_data, api_data)


if __name__ == "__main__":
    unittest.main()
