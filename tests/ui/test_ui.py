"""The web UI in a real browser (headless Chromium through Selenium) against
`drswitch serve` and the simulated Proxmox lab.

One lab, one drswitch and one browser serve the whole module. The tests are
numbered in the order a sysadmin would go: later ones reuse what earlier
ones made, and make it through the JSON API themselves when run alone.

Run: /usr/bin/python3 -m unittest discover -s tests/ui -v
"""
import datetime
import hashlib
import hmac
import json
import os
import re
import unittest
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

import harness
from harness import ADMIN, ADMIN_PW, FINAL, UUID, Api, Page, wait_until

SUITE = None
FAILURES = "/tmp/drswitch-ui-failures"
WEBHOOK_SECRET = "hook-secret-0123456789"


def setUpModule():
    global SUITE
    SUITE = harness.Suite().start()


def tearDownModule():
    if SUITE is not None:
        SUITE.stop()


# What several tests need, made through the API when no earlier test made it.

def hypervisors():
    """dc1 (role dc) and drc1 (role drc) registered from the lab's details."""
    for name, role in (("dc1", "dc"), ("drc1", "drc")):
        if name not in SUITE.ids:
            h = SUITE.api.post("/api/v1/hypervisors", SUITE.lab.hypervisor_body(name, role), expect=201)
            SUITE.ids[name] = h["id"]
    return SUITE.ids["dc1"], SUITE.ids["drc1"]


def pinned():
    """Both lab hosts registered and their SSH host keys pinned."""
    dc, drc = hypervisors()
    for hid in (dc, drc):
        if not SUITE.api.get(f"/api/v1/hypervisors/{hid}").get("host_key_fingerprint"):
            report = SUITE.api.post(f"/api/v1/hypervisors/{hid}/check", {}, expect=200)
            assert report["ok"], report
    return dc, drc


def vm100():
    if "vm100" not in SUITE.ids:
        SUITE.lab.create_vm("dc1", 100, "8M")
        SUITE.ids["vm100"] = True


def pair():
    """The main pair: dc1 VM 100 to drc1 VM 9100, its keys pinned."""
    dc, drc = pinned()
    vm100()
    if "pair" not in SUITE.ids:
        p = SUITE.api.post("/api/v1/pairs", {"name": "web01", "src_hypervisor_id": dc, "src_vmid": 100,
                                             "dst_hypervisor_id": drc, "dst_vmid": 9100}, expect=201)
        SUITE.ids["pair"] = p["id"]
    return SUITE.ids["pair"]


def archive():
    """At least one verified archive of the main pair; returns the newest."""
    pid = pair()
    archives = SUITE.api.get(f"/api/v1/pairs/{pid}/archives")
    archives = archives["items"] if isinstance(archives, dict) else archives
    if not archives:
        task = SUITE.api.post(f"/api/v1/pairs/{pid}/backup", {}, expect=202)
        assert SUITE.api.wait_task(task["id"])["status"] == "succeeded"
        archives = SUITE.api.get(f"/api/v1/pairs/{pid}/archives")
        archives = archives["items"] if isinstance(archives, dict) else archives
    return archives[0]


def api_tasks(**query):
    q = urllib.parse.urlencode({"limit": 500, **query})
    return SUITE.api.get(f"/api/v1/tasks?{q}")


def api_alerts(**query):
    q = urllib.parse.urlencode({"limit": 500, **query})
    return SUITE.api.get(f"/api/v1/alerts?{q}")


def host_status(hid):
    return SUITE.api.get(f"/api/v1/hypervisors/{hid}/status")


def probed(hid, n=3, timeout=30):
    """Waits until the monitor has at least `n` samples of host `hid`."""
    return wait_until(lambda: (lambda st: st if len(st["history"]) >= n else None)(host_status(hid)),
                      timeout=timeout, interval=0.25, what=f"{n} samples of {hid}")


def webhook_target():
    """The ops webhook (to the suite's receiver, signed), made through the API
    when no test made it through the form."""
    if "target" not in SUITE.ids:
        t = SUITE.api.post("/api/v1/notification-targets", {
            "name": "ops webhook", "kind": "webhook", "url": SUITE.receiver.url, "secret": WEBHOOK_SECRET,
            "kinds": ["host_down", "service_down"]}, expect=201)
        SUITE.ids["target"] = t["id"]
    return SUITE.ids["target"]


def find_alert(kind, subject_id, text, state):
    for a in api_alerts(state=state):
        if a["kind"] == kind and a["subject"]["id"] == subject_id and text in a["message"]:
            return a
    return None


def service_alert(service, resolve):
    """Stops `service` on dc1 until its service_down alert is open; with
    `resolve`, starts it again until the alert is resolved. Returns the alert."""
    dc, _ = pinned()
    if resolve:
        done = find_alert("service_down", dc, service, "resolved")
        if done:
            return done
    SUITE.lab.hook("dc1", "services-stopped", service)
    opened = wait_until(lambda: find_alert("service_down", dc, service, "open"), timeout=40, interval=0.25,
                        what=f"a service_down alert for {service}")
    if not resolve:
        return opened
    SUITE.lab.clear_hook("dc1", "services-stopped")
    return wait_until(lambda: find_alert("service_down", dc, service, "resolved"), timeout=40, interval=0.25,
                      what=f"the {service} alert resolved")


class UiTest(unittest.TestCase):
    """Logged in as the admin unless a test says otherwise."""

    login_as_admin = True

    def setUp(self):
        self.s = SUITE
        self.p = Page(SUITE)
        self.d = SUITE.driver
        if self.login_as_admin:
            self.p.ensure_user(ADMIN, ADMIN_PW)

    def tearDown(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = result is not None and any(t is self for t, _ in result.errors + result.failures)
        if failed:
            os.makedirs(FAILURES, exist_ok=True)
            shot = os.path.join(FAILURES, self.id().rsplit(".", 1)[-1] + ".png")
            try:
                self.d.save_screenshot(shot)
                print(f"\n  failure screenshot: {shot} (page {self.d.current_url})")
            except Exception:
                pass
            server = self.s.server
            if server and server.proc.poll() is not None:
                print(f"\n  drswitch exited with {server.proc.returncode}; its log ends:\n{server.log()[-3000:]}")
        # Never leave a dialog open for the next test.
        try:
            self.d.switch_to.alert.dismiss()
        except Exception:
            pass
        # Whatever the test did, the browser saw nothing break the page's policy.
        violations = [e["message"] for e in self.p.console_errors()
                      if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
        if not failed:
            self.assertEqual(violations, [], "the browser blocked something on these pages")

    # Page readers

    def facts(self, scope=None):
        """A `dl.facts` as {dt text: dd text}."""
        dl = (scope or self.d).find_element(By.CSS_SELECTOR, "dl.facts")
        dts = dl.find_elements(By.TAG_NAME, "dt")
        dds = dl.find_elements(By.TAG_NAME, "dd")
        return {dt.text: dd.text for dt, dd in zip(dts, dds)}

    def h1(self):
        return self.p.css("h1").text

    def row_with_link(self, text):
        """The table row whose link says `text`, as a list of cell texts."""
        for tr in self.d.find_elements(By.CSS_SELECTOR, "table tbody tr"):
            links = tr.find_elements(By.TAG_NAME, "a")
            if any(a.text == text for a in links):
                return [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        return None

    def post_form_actions(self):
        return sorted(urllib.parse.urlsplit(f.get_attribute("action")).path
                      for f in self.d.find_elements(By.CSS_SELECTOR, "form[method='post']"))

    def task_state(self):
        """(progress value, status text, phase text, log line seqs) of a task page,
        read in one script so an htmx swap cannot fall between the reads."""
        progress, status, phase, seqs = self.d.execute_script(
            "const q = s => document.querySelector(s);"
            "return [q('#task-progress').getAttribute('value'), q('#task-status').textContent.trim(),"
            " q('#task-phase').textContent.trim(),"
            " Array.from(document.querySelectorAll('#task-log .line')).map(l => l.dataset.seq)];")
        return int(float(progress)), status, phase, [int(s) for s in seqs]

    def task_id_from_path(self):
        m = re.fullmatch(f"/tasks/({UUID})", self.p.path())
        self.assertIsNotNone(m, f"not a task page: {self.p.path()}")
        return m.group(1)


class T01Login(UiTest):
    login_as_admin = False

    def test_01_log_in(self):
        self.d.delete_all_cookies()
        self.p.open("/pairs")
        self.assertEqual(self.p.path(), "/login", "a page sends a stranger to the login form")
        self.assertEqual(self.p.who(), None)
        self.p.fill({"username": ADMIN, "password": ADMIN_PW})
        self.p.click_and_wait_load(self.p.button("Log in"))
        self.assertEqual(self.p.path(), "/")
        self.assertEqual(self.h1(), "Dashboard")
        self.assertEqual(self.p.who(), "admin · admin")
        nav = [a.text for a in self.p.css_all("header nav a")]
        self.assertEqual(nav, ["Dashboard", "Hypervisors", "Pairs", "Plans", "Tasks", "Schedules", "Archives",
                               "Alerts", "Users", "Settings", "Audit", "Account"])
        self.assertEqual(self.p.css("header nav a.active").text, "Dashboard")
        self.assertEqual(len(self.p.buttons("Log out")), 1)

    def test_02_log_out(self):
        self.p.ensure_user(ADMIN, ADMIN_PW)
        self.p.open("/hypervisors")
        self.assertEqual(self.p.path(), "/hypervisors")
        self.p.click_and_wait_load(self.p.button("Log out"))
        self.assertEqual(self.p.path(), "/login")
        self.assertEqual(self.p.who(), None)
        self.assertEqual(len(self.p.buttons("Log in")), 1)
        # Logged out: pages send to the login form again.
        self.p.open("/hypervisors")
        self.assertEqual(self.p.path(), "/login")
        self.p.open("/")
        self.assertEqual(self.p.path(), "/login")

    def test_03_wrong_password_shows_an_error(self):
        self.d.delete_all_cookies()
        self.p.open("/login")
        self.p.fill({"username": ADMIN, "password": "not-the-password"})
        self.p.click_and_wait_load(self.p.button("Log in"))
        self.assertEqual(self.p.path(), "/login")
        error = self.p.css(".flash.error")
        self.assertEqual(error.text, "Wrong username or password.")
        self.assertEqual(self.p.field("username").get_attribute("value"), ADMIN, "the username is kept")
        self.assertEqual(self.p.field("password").get_attribute("value"), "", "the password is not echoed")
        self.assertEqual(self.p.who(), None)
        self.p.open("/")
        self.assertEqual(self.p.path(), "/login", "a failed login does not log in")


class T04Hypervisors(UiTest):
    def add_through_form(self, name, role):
        lab = self.s.lab.hosts[name]
        self.p.open("/hypervisors")
        self.p.click_and_wait_load(self.p.link("Add hypervisor"))
        self.assertEqual(self.p.path(), "/hypervisors/new")
        # The defaults a sysadmin starts from.
        self.assertEqual(self.p.field("ssh_port").get_attribute("value"), "22")
        self.assertEqual(self.p.field("ssh_user").get_attribute("value"), "root")
        self.assertEqual(self.p.field("api_port").get_attribute("value"), "8006")
        self.assertTrue(self.p.field("enabled").is_selected())
        self.p.fill({
            "name": name, "role": role, "host": lab["address"], "node": lab["node"],
            "ssh_port": lab["ssh_port"], "api_port": lab["api_port"], "api_token_id": lab["api_token_id"],
            "api_token_secret": lab["api_token_secret"], "tls_fingerprint": lab["tls_fingerprint"],
            "dump_dir": lab["dump_dir"],
        })
        self.p.click_and_wait_load(self.p.button("Add hypervisor"))
        m = re.fullmatch(f"/hypervisors/({UUID})", self.p.path())
        self.assertIsNotNone(m, f"after adding: {self.p.path()} {self.p.flash()}")
        self.assertIn(f"Hypervisor {name} added.", self.p.flash())
        self.assertEqual(self.h1(), f"{name} {role}")
        facts = self.facts()
        self.assertEqual(facts["Address"], f"{lab['address']}:{lab['ssh_port']} (ssh user root)")
        self.assertEqual(facts["Proxmox node"], lab["node"])
        self.assertEqual(facts["API"], f"https://{lab['address']}:{lab['api_port']}")
        self.assertEqual(facts["API token"], f"{lab['api_token_id']} (secret stored)")
        self.assertEqual(facts["TLS pin"], lab["tls_fingerprint"])
        self.assertEqual(facts["Dump directory"], lab["dump_dir"])
        self.assertEqual(facts["Restore storage"], "local-lvm")
        self.assertEqual(facts["Enabled"], "yes")
        self.assertIn("not checked yet", facts["SSH host key"])
        self.assertNotIn(lab["api_token_secret"], self.d.page_source, "the token secret is write-only")
        stored = self.s.api.get(f"/api/v1/hypervisors/{m.group(1)}")
        self.assertEqual((stored["name"], stored["role"], stored["ssh_port"], stored["api_port"]),
                         (name, role, lab["ssh_port"], lab["api_port"]))
        return m.group(1)

    def test_04_add_hypervisors_through_the_form(self):
        for name, role in (("dc1", "dc"), ("drc1", "drc")):
            if name in self.s.ids:
                self.skipTest(f"{name} exists already")
            self.s.ids[name] = self.add_through_form(name, role)

    def test_05_list_shows_them(self):
        dc, drc = hypervisors()
        names = {h: self.s.api.get(f"/api/v1/hypervisors/{h}")["name"] for h in (dc, drc)}
        self.p.open("/hypervisors")
        self.assertEqual(self.h1(), "Hypervisors")
        header = [self.p.text_of(th) for th in self.p.css_all("table thead th")]
        self.assertEqual(header, ["Name", "Role", "Address", "Node", "Host key", "State"])
        for hid, lab_name, role in ((dc, "dc1", "dc"), (drc, "drc1", "drc")):
            lab = self.s.lab.hosts[lab_name]
            row = self.row_with_link(names[hid])
            self.assertIsNotNone(row, f"{names[hid]} is not listed")
            self.assertEqual(row[1:4], [role, f"{lab['address']}:{lab['ssh_port']}", lab["node"]])
            self.assertIn(row[4], ("pinned", "not checked yet"))
            self.assertEqual(row[5], "enabled")
            href = self.p.link(names[hid]).get_attribute("href")
            self.assertTrue(href.endswith(f"/hypervisors/{hid}"), href)
        # The middleware's key, to install on each host.
        with open(os.path.join(self.s.server.env["DATA_DIR"], "ssh", "id_ed25519.pub")) as f:
            key = f.read().strip()
        self.assertEqual(self.p.css("#install-key").text, f"echo '{key}' >> /root/.ssh/authorized_keys")

    def test_06_edit_a_hypervisor(self):
        _, drc = hypervisors()
        self.p.open(f"/hypervisors/{drc}")
        self.p.click_and_wait_load(self.p.link("Edit"))
        self.assertEqual(self.p.path(), f"/hypervisors/{drc}/edit")
        lab = self.s.lab.hosts["drc1"]
        self.assertEqual(self.p.field("host").get_attribute("value"), lab["address"])
        self.assertEqual(self.p.field("ssh_port").get_attribute("value"), str(lab["ssh_port"]))
        self.assertEqual(self.p.field("role").get_attribute("value"), "drc")
        self.assertEqual(self.p.field("tls_fingerprint").get_attribute("value"), lab["tls_fingerprint"])
        self.assertEqual(self.p.field("api_token_secret").get_attribute("value"), "", "secrets are never sent back")
        self.p.fill({"name": "drc1-recovery", "restore_storage": "local-lvm"})
        self.p.click_and_wait_load(self.p.button("Save"))
        self.assertEqual(self.p.path(), f"/hypervisors/{drc}")
        self.assertIn("Hypervisor drc1-recovery saved.", self.p.flash())
        self.assertEqual(self.h1(), "drc1-recovery drc")
        facts = self.facts()
        self.assertEqual(facts["API token"], f"{lab['api_token_id']} (secret stored)",
                         "saving without retyping the secret keeps the stored one")
        self.assertEqual(facts["Address"], f"{lab['address']}:{lab['ssh_port']} (ssh user root)")
        self.p.open("/hypervisors")
        self.assertIsNotNone(self.row_with_link("drc1-recovery"))
        self.assertIsNone(self.row_with_link("drc1"))

    def test_07_delete_a_spare_hypervisor(self):
        spare = self.s.api.post("/api/v1/hypervisors", {"name": "spare-drc", "host": "127.0.0.1", "node": "spare",
                                                         "role": "drc"}, expect=201)
        self.p.open(f"/hypervisors/{spare['id']}")
        self.assertEqual(self.h1(), "spare-drc drc")
        # Dismissing the question keeps it.
        self.p.button("Delete").click()
        question = self.p.confirm(accept=False)
        self.assertIn("Delete this hypervisor?", question)
        self.assertEqual(self.p.path(), f"/hypervisors/{spare['id']}")
        self.s.api.get(f"/api/v1/hypervisors/{spare['id']}", expect=200)
        # Accepting deletes it.
        self.p.click_confirm_and_wait_load(self.p.button("Delete"), accept=True)
        self.assertEqual(self.p.path(), "/hypervisors")
        self.assertIn("Hypervisor deleted.", self.p.flash())
        self.assertIsNone(self.row_with_link("spare-drc"))
        self.s.api.get(f"/api/v1/hypervisors/{spare['id']}", expect=404)

    def test_08_test_connection_pins_the_host_key(self):
        dc, drc = hypervisors()
        for hid, lab_name in ((dc, "dc1"), (drc, "drc1")):
            lab = self.s.lab.hosts[lab_name]
            self.p.open(f"/hypervisors/{hid}")
            self.p.click_and_wait_load(self.p.button("Test connection"))
            report = self.p.css("#check-report")
            rows = {r[0]: (r[1], r[2]) for r in self.p.table_rows(report)}
            self.assertEqual(list(rows), ["Host key", "SSH", "Proxmox API", "Node name"])
            for what, (badge, message) in rows.items():
                self.assertEqual(badge, "ok", f"{lab_name} {what}: {message}")
            self.assertIn("all good", report.find_element(By.TAG_NAME, "h2").text)
            self.assertIn(f"Host key fingerprint: {lab['host_key_sha256']}", report.text)
            if lab_name == "dc1":
                self.p.screenshot("hypervisor.png")
            # Pinned: the page shows the key from now on.
            self.p.open(f"/hypervisors/{hid}")
            self.assertEqual(self.facts()["SSH host key"], lab["host_key_sha256"])
            self.assertEqual(len(self.p.buttons("Re-pin host key")), 1)
        self.p.open("/hypervisors")
        for hid in (dc, drc):
            name = self.s.api.get(f"/api/v1/hypervisors/{hid}")["name"]
            self.assertEqual(self.row_with_link(name)[4], "pinned")


class T09Pairs(UiTest):
    def test_09_add_a_pair(self):
        if "pair" in self.s.ids:
            self.skipTest("the pair exists already")
        dc, drc = pinned()
        vm100()
        drc_name = self.s.api.get(f"/api/v1/hypervisors/{drc}")["name"]
        self.p.open("/pairs")
        self.p.click_and_wait_load(self.p.link("Add pair"))
        self.assertEqual(self.p.path(), "/pairs/new")
        self.p.fill({"src_hypervisor_id": dc})
        # The picker lists the DC host's VMs from its Proxmox API and fills the VMID.
        pick = self.p.until(lambda d: self.p.css("#vm-picker select[name='src_vmid_pick']"),
                            message="the VM picker did not list the DC host's VMs")
        options = [o.text for o in pick.find_elements(By.TAG_NAME, "option")]
        self.assertIn("100 · vm100 (running)", options)
        Select(pick).select_by_value("100")
        self.assertEqual(self.p.field("src_vmid").get_attribute("value"), "100")
        self.p.fill({"name": "web01", "dst_hypervisor_id": drc, "dst_vmid": 9100})
        self.p.click_and_wait_load(self.p.button("Add pair"))
        m = re.fullmatch(f"/pairs/({UUID})", self.p.path())
        self.assertIsNotNone(m, f"after adding: {self.p.path()} {self.p.flash()}")
        self.s.ids["pair"] = m.group(1)
        self.assertIn("Pair web01 added.", self.p.flash())
        self.assertTrue(self.h1().startswith("web01"), self.h1())
        facts = self.facts()
        self.assertEqual(facts["DC VM"], "dc1 / VM 100 (qemu)")
        self.assertEqual(facts["DRC replica"], f"{drc_name} / VM 9100")
        self.assertEqual(facts["Backup"], "snapshot mode, zstd, keep 3")
        self.assertEqual(facts["After restore"], "start the replica")
        self.assertEqual(facts["RPO target"], "25 h")
        self.assertIn("No archive yet.", self.d.find_element(By.TAG_NAME, "main").text)

    def test_10_list_pairs(self):
        pid = pair()
        dc, drc = pinned()
        drc_name = self.s.api.get(f"/api/v1/hypervisors/{drc}")["name"]
        name = self.s.api.get(f"/api/v1/pairs/{pid}")["name"]
        self.p.open("/pairs")
        self.assertEqual(self.h1(), "VM pairs")
        header = [self.p.text_of(th) for th in self.p.css_all("table thead th")]
        self.assertEqual(header, ["Name", "DC VM", "DRC replica", "Recovery point", "State"])
        row = self.row_with_link(name)
        self.assertIsNotNone(row, f"pair {name} is not listed")
        self.assertEqual(row[1:3], ["dc1 / 100", f"{drc_name} / 9100"])
        self.assertRegex(row[3], r"^(no archive|.+ old)$")
        self.assertEqual(row[4], "protected", "the state column shows where the pair stands in the switch")
        badge = self.d.find_element(By.XPATH, f"//tr[.//a[normalize-space()={harness.xpath_str(name)}]]//*[@data-state]")
        self.assertEqual(badge.get_attribute("data-state"), "protected")
        self.assertIn("badge ok", badge.get_attribute("class"))
        self.p.click_and_wait_load(self.p.link(name))
        self.assertEqual(self.p.path(), f"/pairs/{pid}")

    def test_11_edit_a_pair(self):
        pid = pair()
        self.p.open(f"/pairs/{pid}")
        self.p.click_and_wait_load(self.p.link("Edit"))
        self.assertEqual(self.p.path(), f"/pairs/{pid}/edit")
        self.assertEqual(self.p.field("src_vmid").get_attribute("value"), "100")
        self.assertEqual(self.p.field("dst_vmid").get_attribute("value"), "9100")
        self.assertEqual(self.p.field("compress").get_attribute("value"), "zstd")
        self.p.fill({"keep_last": 4, "rpo_target_secs": 86400})
        self.p.click_and_wait_load(self.p.button("Save"))
        self.assertEqual(self.p.path(), f"/pairs/{pid}")
        self.assertIn("saved.", self.p.flash())
        facts = self.facts()
        self.assertEqual(facts["Backup"], "snapshot mode, zstd, keep 4")
        self.assertEqual(facts["RPO target"], "24 h")
        stored = self.s.api.get(f"/api/v1/pairs/{pid}")
        self.assertEqual((stored["keep_last"], stored["rpo_target_secs"], stored["src_vmid"], stored["dst_vmid"]),
                         (4, 86400, 100, 9100))

    def test_12_delete_a_pair(self):
        dc, drc = hypervisors()
        spare = self.s.api.post("/api/v1/pairs", {"name": "spare-pair", "src_hypervisor_id": dc, "src_vmid": 101,
                                                  "dst_hypervisor_id": drc, "dst_vmid": 9101}, expect=201)
        self.p.open("/pairs")
        self.assertIsNotNone(self.row_with_link("spare-pair"))
        self.p.open(f"/pairs/{spare['id']}")
        question = self.p.click_confirm_and_wait_load(self.p.button("Delete"), accept=True)
        self.assertIn("Delete this pair", question)
        self.assertEqual(self.p.path(), "/pairs")
        self.assertIn("Pair deleted", self.p.flash())
        self.assertIsNone(self.row_with_link("spare-pair"))
        self.s.api.get(f"/api/v1/pairs/{spare['id']}", expect=404)


class T13Users(UiTest):
    def test_13_register_a_user_and_log_in_as_them(self):
        self.p.open("/users")
        self.assertEqual(self.h1(), "Users")
        form = self.p.css("form[action='/users']")
        self.assertEqual(self.p.field("role", form).get_attribute("value"), "operator", "operator is the default role")
        self.p.fill({"username": "olivia", "full_name": "Olivia Operator", "password": "olivia-password-1",
                     "role": "operator"}, form)
        self.p.click_and_wait_load(self.p.button("Register user", form))
        self.assertEqual(self.p.path(), "/users")
        self.assertIn("User olivia registered.", self.p.flash())
        rows = {r[0]: r for r in self.p.table_rows()}
        self.assertIn("olivia", rows)
        self.assertEqual(rows["olivia"][1:4], ["Olivia Operator", "operator", "active"])
        self.p.click_and_wait_load(self.p.button("Log out"))
        self.p.fill({"username": "olivia", "password": "olivia-password-1"})
        self.p.click_and_wait_load(self.p.button("Log in"))
        self.assertEqual(self.p.path(), "/")
        self.assertEqual(self.p.who(), "olivia · operator")
        nav = [a.text for a in self.p.css_all("header nav a")]
        self.assertNotIn("Users", nav)
        self.p.open("/users")
        self.assertIn("Forbidden", self.h1(), "an operator may not manage users")

    def test_13a_an_admin_logs_a_user_out_everywhere(self):
        self.s.api.post("/api/v1/users", {"username": "lena", "password": "lena-password-1", "role": "viewer"},
                        expect=201)
        lena = Api(self.s.base).login("lena", "lena-password-1")
        self.assertEqual(lena.request("GET", "/api/v1/auth/me").status, 200)
        self.p.open("/users")
        row = self.d.find_element(By.XPATH, "//table//tr[td[1][normalize-space()='lena']]")
        question = self.p.click_confirm_and_wait_load(self.p.button("Log out everywhere", row))
        self.assertIn("every device", question)
        self.assertEqual(self.p.path(), "/users")
        self.assertIn("Every session of lena ended.", self.p.flash())
        self.assertEqual(lena.request("GET", "/api/v1/auth/me").status, 401, "lena's session ended")
        self.assertEqual(self.p.who(), "admin · admin", "the admin's own session goes on")


class T14Tasks(UiTest):
    def queue_from_pair_page(self, label, pid, confirm=False):
        self.p.open(f"/pairs/{pid}")
        if confirm:
            self.p.click_confirm_and_wait_load(self.p.button(label), accept=True)
        else:
            self.p.click_and_wait_load(self.p.button(label))
        return self.task_id_from_path()

    def test_14_backup_now_and_watch_it_live(self):
        pid = pair()
        self.s.lab.hook("dc1", "vzdump-slow", "2500000")  # ~3 s of dumping: several progress steps
        self.addCleanup(self.s.lab.clear_hook, "dc1", "vzdump-slow")
        tid = self.queue_from_pair_page("Backup now", pid)
        self.assertIn("backup", self.h1())
        self.d.execute_script("window.__marker = 1;")
        first = self.task_state()
        samples = [first]

        def finished(_):
            state = self.task_state()
            if state != samples[-1]:
                samples.append(state)
            return state[1] in FINAL

        self.p.until(finished, timeout=60, message="the task page never showed a final status")
        # Read once more: a sample taken while htmx swapped the live part
        # can mix the old bar with the new status; polling has stopped now.
        progress, status, phase, seqs = self.task_state()
        self.assertEqual(self.d.execute_script("return window.__marker"), 1, "the page was reloaded")
        self.assertEqual(status, "succeeded", f"log: {self.p.css('#task-log').text[-2000:]}")
        self.assertTrue(any(s[1] == "running" for s in samples), f"never seen running: {samples}")
        self.assertEqual(self.p.buttons("Cancel"), [], "a finished task still offers Cancel")
        self.assertEqual(progress, 100)
        self.assertEqual(self.p.css("#task-percent").text, "100%")
        running = [s[0] for s in samples if s[1] == "running"]
        self.assertEqual(running, sorted(running), f"progress went backwards: {running}")
        self.assertGreaterEqual(len(set(p for p in running if 0 < p < 100)), 2,
                                f"the bar did not move while running: {running}")
        self.assertGreater(len(seqs), len(first[3]), "no log lines were appended")
        self.assertEqual(seqs[:len(first[3])], first[3], "the lines shown at first were replaced")
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "log lines are missing or doubled")
        api_log = self.s.api.get(f"/api/v1/tasks/{tid}/log")
        api_log = api_log["items"] if isinstance(api_log, dict) else api_log
        self.assertEqual(len(seqs), len(api_log), "the page's log differs from the task's log")
        self.assertIn("Backup job finished successfully", self.p.css("#task-log").text)
        self.assertEqual(self.s.api.get(f"/api/v1/tasks/{tid}")["status"], "succeeded")
        self.s.ids["backup_task"] = tid

    def test_14a_running_task_shows_bytes_and_rate(self):
        # SPEC 6.1: a running task shows its progress bar, its phase, bytes and rate.
        pid = pair()
        self.s.lab.hook("dc1", "vzdump-slow", "1000000")
        self.addCleanup(self.s.lab.clear_hook, "dc1", "vzdump-slow")
        tid = self.queue_from_pair_page("Backup now", pid)
        self.addCleanup(lambda: self.s.api.wait_task(tid))
        self.addCleanup(self.s.api.post, f"/api/v1/tasks/{tid}/cancel")
        self.p.until(lambda d: (lambda s: s[1] == "running" and s[2] == "dumping" and 10 <= s[0] < 100)(
            self.task_state()), timeout=30, message="the backup never got going")
        line = self.p.css(".progress-line").text
        self.assertRegex(line, r"\d+(\.\d+)? (B|KiB|MiB|GiB) of \d+(\.\d+)? (B|KiB|MiB|GiB)",
                         f"no bytes done of total while {self.task_state()[2]}: {line!r}")
        self.assertRegex(line, r"\d+(\.\d+)? (B|KiB|MiB|GiB)/s", f"no transfer rate: {line!r}")

    def test_14b_streaming_replicate_under_a_host_limit_shows_rate_and_time_left(self):
        pid = pair()
        dc, _ = pinned()
        # The limit and the transfer mode go through the edit forms.
        self.p.open(f"/hypervisors/{dc}/edit")
        self.p.fill({"bwlimit_kib": 256})
        self.p.click_and_wait_load(self.p.button("Save"))
        self.addCleanup(self.s.api.put, f"/api/v1/hypervisors/{dc}", {"bwlimit_kib": None})
        self.assertEqual(self.s.api.get(f"/api/v1/hypervisors/{dc}")["bwlimit_kib"], 256)
        self.assertEqual(self.facts()["Transfer limit"], "256 KiB/s")
        self.p.open(f"/pairs/{pid}/edit")
        self.assertEqual(self.p.field("transfer").get_attribute("value"), "staged")
        self.p.fill({"transfer": "streaming"})
        self.p.click_and_wait_load(self.p.button("Save"))
        self.addCleanup(self.s.api.put, f"/api/v1/pairs/{pid}", {"transfer": "staged", "compress": "zstd"})
        self.assertEqual(self.s.api.get(f"/api/v1/pairs/{pid}")["transfer"], "streaming")
        # Uncompressed, the 8 MiB disk takes seconds at 256 KiB/s.
        self.s.api.put(f"/api/v1/pairs/{pid}", {"compress": "none"})
        self.assertTrue(self.facts()["Transfer"].startswith("streaming"), self.facts())
        tid = self.queue_from_pair_page("Replicate now", pid, confirm=True)
        self.addCleanup(lambda: self.s.api.wait_task(tid))
        self.addCleanup(self.s.api.post, f"/api/v1/tasks/{tid}/cancel")
        self.p.until(lambda d: self.task_state()[2] == "streaming" and self.p.css_all("#task-rate")
                     and self.p.css_all("#task-eta"), timeout=60, message="no rate and time left while streaming")
        line = self.p.css(".progress-line").text
        self.assertRegex(line, r"\d+(\.\d+)? (B|KiB|MiB) of \d+(\.\d+)? (B|KiB|MiB)", line)
        self.assertRegex(self.p.css("#task-rate").text, r"^\d+(\.\d+)? (B|KiB|MiB)/s$")
        self.assertRegex(self.p.css("#task-eta").text, r"^about \d+ (s|min) left$")
        self.p.screenshot("task-streaming.png")

    def test_15_restore_from_the_pair_page(self):
        pid = pair()
        newest = archive()
        self.p.open(f"/pairs/{pid}")
        table = self.d.find_element(By.XPATH, "//h2[normalize-space()='Archives']/following-sibling::div[1]")
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        self.assertGreaterEqual(len(rows), 1)
        self.assertEqual(rows[0].find_element(By.TAG_NAME, "td").text, newest["file_name"])
        self.assertRegex(newest["file_name"], r"^vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$")
        question = self.p.click_confirm_and_wait_load(self.p.button("Restore", rows[0]), accept=True)
        self.assertIn("Restore this archive", question)
        tid = self.task_id_from_path()
        self.assertIn("restore", self.h1())
        self.p.until(lambda d: self.task_state()[1] in FINAL, timeout=90,
                     message="the restore never showed a final status")
        progress, status, _, _ = self.task_state()
        self.assertEqual(status, "succeeded", f"log: {self.p.css('#task-log').text[-2000:]}")
        self.assertEqual(progress, 100)
        task = self.s.api.get(f"/api/v1/tasks/{tid}")
        self.assertEqual((task["kind"], task["status"], task["archive_id"]), ("restore", "succeeded", newest["id"]))
        self.assertEqual(self.s.lab.vm_status("drc1", 9100), "running")
        self.p.open(f"/pairs/{pid}")
        self.assertEqual(self.facts()["Replica"], "replica restored by drswitch")

    def test_16_schedule_a_daily_backup(self):
        pid = pair()
        name = self.s.api.get(f"/api/v1/pairs/{pid}")["name"]
        # Half a day away, so it cannot fall due while the suite runs.
        # Europe/Istanbul is UTC+3 all year.
        now = datetime.datetime.now(datetime.timezone.utc)
        local_hour = (now.hour + 3 + 12) % 24
        utc_hour = (local_hour - 3) % 24
        self.p.open(f"/pairs/{pid}")
        form = self.p.css("#schedule-form")
        self.assertEqual(form.find_element(By.TAG_NAME, "h2").text, "Schedule backup")
        self.p.fill({"kind": "backup", "hour": local_hour, "minute": 30, "timezone": "Europe/Istanbul"}, form)
        # The preview follows the typing: wait for the one of the whole input.
        expected = re.compile(r"Next runs: (\d{4}-\d\d-\d\d %02d:30:00) UTC(, \d{4}-\d\d-\d\d %02d:30:00 UTC){4}$"
                              % (utc_hour, utc_hour))
        preview = self.p.until(
            lambda d: (lambda t: t if expected.match(t) else None)(self.p.css("#schedule-preview").text),
            message=f"the preview never showed five daily runs at {utc_hour:02}:30 UTC")
        runs = re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", preview)
        self.p.click_and_wait_load(self.p.button("Schedule backup", form))
        self.assertEqual(self.p.path(), f"/pairs/{pid}")
        self.assertIn(f"Scheduled; the next run is {runs[0]} UTC.", self.p.flash())
        self.p.open("/schedules")
        self.assertEqual(self.h1(), "Schedules")
        row = self.row_with_link(name)
        self.assertIsNotNone(row, "the schedule is not listed")
        when = f"daily {local_hour:02}:30 Europe/Istanbul"
        self.assertEqual(row[1:6], ["backup", when, f"{runs[0]} UTC", "never", ""])
        next_run = datetime.datetime.strptime(runs[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        self.assertTrue(now < next_run <= now + datetime.timedelta(hours=24), runs[0])
        # Disable shows no next run; Enable brings it back.
        self.p.click_and_wait_load(self.p.button("Disable"))
        row = self.row_with_link(name)
        self.assertEqual(row[3], "disabled")
        self.assertEqual(len(self.p.buttons("Enable")), 1)
        self.p.click_and_wait_load(self.p.button("Enable"))
        row = self.row_with_link(name)
        self.assertEqual(row[3], f"{runs[0]} UTC")
        self.assertEqual(len(self.p.buttons("Disable")), 1)

    def test_17_task_list_and_status_filter(self):
        pid = pair()
        archive()
        # One failed backup, so the filter has something to tell apart.
        self.s.lab.hook("dc1", "vzdump-fail", "disk on fire")
        self.addCleanup(self.s.lab.clear_hook, "dc1", "vzdump-fail")
        failed = self.s.api.post(f"/api/v1/pairs/{pid}/backup", {}, expect=202)
        self.assertEqual(self.s.api.wait_task(failed["id"])["status"], "failed")
        everything = api_tasks()
        self.p.open("/tasks")
        self.assertEqual(self.h1(), "Tasks")
        links = [a.text for a in self.p.css_all("#task-table tbody tr td:first-child a")]
        self.assertEqual(links, [t["id"][:8] for t in everything["items"]], "newest first, all of them")
        self.assertIn(f"{everything['total']} tasks", self.p.css(".pager").text)
        failed_row = [r for r in self.p.table_rows(self.p.css("#task-table")) if r[0] == failed["id"][:8]][0]
        self.assertIn("failed", failed_row)
        self.assertTrue(any("disk on fire" in c for c in failed_row), failed_row)
        for status in ("succeeded", "failed"):
            self.p.fill({"status": status}, self.p.css("form.filters"))
            self.p.click_and_wait_load(self.p.button("Filter"))
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.d.current_url).query)
            self.assertEqual(query.get("status"), [status])
            self.assertEqual(self.p.field("status").get_attribute("value"), status, "the filter stays chosen")
            expected = [t["id"][:8] for t in api_tasks(status=status)["items"]]
            self.assertGreaterEqual(len(expected), 1)
            rows = self.p.table_rows(self.p.css("#task-table"))
            self.assertEqual([r[0] for r in rows], expected)
            status_col = [self.p.text_of(th) for th in self.p.css_all("#task-table thead th")].index("Status")
            self.assertEqual({r[status_col] for r in rows}, {status})
        self.assertIn(failed["id"][:8], [r[0] for r in rows])

    def test_18_cancel_a_running_task(self):
        pid = pair()
        self.s.lab.hook("dc1", "vzdump-slow", "200000")  # 8 MiB at 200 kB/s: ~40 s unless cancelled
        self.addCleanup(self.s.lab.clear_hook, "dc1", "vzdump-slow")
        tid = self.queue_from_pair_page("Backup now", pid)
        self.p.until(lambda d: (lambda s: s[1] == "running" and s[2] == "dumping" and 0 < s[0] < 100)(
            self.task_state()), timeout=30, message="the backup never showed progress")
        self.assertEqual(len(self.p.buttons("Cancel")), 1)
        self.p.screenshot("task-running.png")
        progress, status, _, _ = self.task_state()
        self.assertEqual(status, "running", "the screenshot must show a running task")
        self.assertLess(progress, 100)
        question = self.p.click_confirm_and_wait_load(self.p.button("Cancel"), accept=True)
        self.assertEqual(question, "Cancel this task?")
        self.assertEqual(self.p.path(), f"/tasks/{tid}")
        self.assertIn("Cancel requested", self.p.flash())
        self.p.until(lambda d: self.task_state()[1] == "cancelled", timeout=30,
                     message="the page never showed the task cancelled")
        self.assertEqual(self.s.api.get(f"/api/v1/tasks/{tid}")["status"], "cancelled")
        self.assertEqual(self.p.buttons("Cancel"), [], "a cancelled task still offers Cancel")
        # Nothing half-written is left on the DC host.
        wait_until(lambda: self.s.lab.dump_files("dc1") == [], timeout=15, what="dc1's dump dir emptied")


class T19Access(UiTest):
    def test_19_a_viewer_sees_no_action_buttons(self):
        pid = pair()
        dc, _ = hypervisors()
        self.s.api.post("/api/v1/users", {"username": "vera", "full_name": "Vera Viewer",
                                          "password": "vera-password-1", "role": "viewer"}, expect=201)
        self.p.login("vera", "vera-password-1")
        self.assertEqual(self.p.who(), "vera · viewer")
        nav = [a.text for a in self.p.css_all("header nav a")]
        self.assertNotIn("Users", nav)
        self.assertNotIn("Settings", nav)
        self.assertIn("Alerts", nav)
        pair_name = self.s.api.get(f"/api/v1/pairs/{pid}")["name"]
        pages = {
            "/pairs": "VM pairs",
            f"/pairs/{pid}": pair_name,
            "/hypervisors": "Hypervisors",
            f"/hypervisors/{dc}": "dc1",
            "/schedules": "Schedules",
            "/archives": "Archives",
            "/tasks": "Tasks",
            "/alerts": "Alerts",
            "/": "Dashboard",
        }
        for path, heading in pages.items():
            self.p.open(path)
            self.assertTrue(self.h1().startswith(heading), f"{path}: {self.h1()}")
            main = self.d.find_element(By.TAG_NAME, "main")
            for label in ("Backup now", "Replicate now", "Restore", "Delete", "Cancel", "Test connection",
                          "Schedule backup", "Disable", "Enable", "Add pair", "Add hypervisor", "Edit",
                          "Fail over", "Fail back", "Run drill"):
                found = main.find_elements(
                    By.XPATH, f".//*[(self::button or self::a) and normalize-space()={harness.xpath_str(label)}]")
                self.assertEqual(found, [], f"{path} offers {label!r} to a viewer")
            self.assertEqual(self.post_form_actions(), ["/logout"], f"{path} has forms a viewer may not post")
        # The pages still show the data.
        self.p.open("/pairs")
        self.assertIsNotNone(self.row_with_link(pair_name))
        self.p.open("/pairs/new")
        self.assertIn("Forbidden", self.h1())
        for path in ("/settings", "/settings/targets/new"):
            self.p.open(path)
            self.assertIn("Forbidden", self.h1(), f"{path} is for admins")

    def test_20_form_post_without_csrf_is_refused(self):
        dc, drc = hypervisors()
        admin = Api(self.s.base).login(ADMIN, ADMIN_PW)
        page = admin.request("GET", "/pairs/new")
        self.assertEqual(page.status, 200, "the API login's cookie opens pages too")
        self.assertIn("Add pair", page.text)
        before = len(self.s.api.get("/api/v1/pairs"))
        fields = {"name": "csrf-less", "src_hypervisor_id": dc, "src_vmid": "100", "dst_hypervisor_id": drc,
                  "dst_vmid": "9300"}
        form = "application/x-www-form-urlencoded"
        r = admin.request("POST", "/pairs", fields, content_type=form)
        self.assertEqual(r.status, 403, r.text[:500])
        self.assertIn("The form expired or did not come from drswitch", r.text)
        r = admin.request("POST", "/pairs", {**fields, "csrf": "0" * 64}, content_type=form)
        self.assertEqual(r.status, 403, "a wrong token is refused too")
        self.assertEqual(len(self.s.api.get("/api/v1/pairs")), before, "nothing was created")
        # The same post with the page's token is taken: the token was what was missing.
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        r = admin.request("POST", "/pairs", {**fields, "csrf": token}, content_type=form)
        self.assertEqual(r.status, 303, r.text[:500])
        created = r.headers["Location"].rsplit("/", 1)[-1]
        self.s.api.delete(f"/api/v1/pairs/{created}", expect=204)

    def test_21_a_script_in_a_name_shows_as_text(self):
        evil = "<script>alert(1)</script>"
        h = self.s.api.post("/api/v1/hypervisors", {"name": evil, "host": "127.0.0.1", "node": "xss",
                                                    "role": "drc"}, expect=201)
        self.addCleanup(self.s.api.delete, f"/api/v1/hypervisors/{h['id']}")
        for path in ("/hypervisors", f"/hypervisors/{h['id']}", "/"):
            self.p.open(path)
            self.assertTrue(self.p.no_alert(), f"{path} ran the script in a name")
            if path == f"/hypervisors/{h['id']}":
                self.assertEqual(self.h1(), f"{evil} drc")
            else:
                self.assertEqual([a.text for a in self.p.links(evil)], [evil], f"{path} does not show the name")
            inline = self.d.execute_script(
                "return Array.from(document.scripts).filter(s => !s.src).map(s => s.textContent)")
            self.assertEqual(inline, [], f"{path} has inline scripts")
            self.assertTrue(self.p.no_alert(), f"{path} ran the script in a name")

    def test_22_field_error_keeps_what_was_typed(self):
        dc, drc = hypervisors()
        before = len(self.s.api.get("/api/v1/pairs"))
        self.p.open("/pairs/new")
        typed = {"name": "typo-pair", "src_hypervisor_id": dc, "src_vmid": 100, "dst_hypervisor_id": drc,
                 "dst_vmid": 99, "keep_last": 5, "compress": "lzo", "mode": "stop"}
        self.p.fill(typed)
        self.p.click_and_wait_load(self.p.button("Add pair"))
        self.assertEqual(self.p.path(), "/pairs")
        self.assertEqual(self.h1(), "Add pair")
        dst = self.p.field("dst_vmid")
        self.assertIn("invalid", dst.get_attribute("class").split())
        errors = dst.find_elements(By.XPATH, "./ancestor::label[1]//*[contains(@class,'field-error')]")
        self.assertEqual(len(errors), 1, "the error is not next to dst_vmid")
        self.assertIn("100", errors[0].text, f"the message should give the allowed range: {errors[0].text}")
        self.assertEqual(len(self.p.css_all(".field-error")), 1, "only the faulty field is marked")
        for name, value in typed.items():
            self.assertEqual(self.p.field(name).get_attribute("value"), str(value), f"{name} was not kept")
        self.assertEqual(len(self.s.api.get("/api/v1/pairs")), before, "nothing was created")


class T23More(UiTest):
    def test_23_create_a_token_shown_once(self):
        self.p.open("/account")
        self.assertEqual(self.h1(), "Account")
        self.p.fill({"name": "nightly cron"}, self.p.css("form[action='/account/tokens']"))
        self.p.click_and_wait_load(self.p.button("Create token"))
        token = self.p.css("#new-token").text.strip()
        self.assertTrue(token.startswith("drs_"), token)
        api = Api(self.s.base)
        me = api.request("GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(me.status, 200, me.text)
        self.assertEqual(me.json()["username"], ADMIN)
        self.p.open("/account")
        self.assertEqual(self.p.css_all("#new-token"), [], "the token is shown only once")
        self.assertIn("nightly cron", [r[0] for r in self.p.table_rows()])

    def test_23a_a_read_only_token_may_only_read(self):
        self.p.open("/account")
        form = self.p.css("form[action='/account/tokens']")
        self.assertEqual(self.p.field("scope", form).get_attribute("value"), "write", "write is the default")
        self.p.fill({"name": "wallboard", "scope": "read"}, form)
        self.p.click_and_wait_load(self.p.button("Create token"))
        token = self.p.css("#new-token").text.strip()
        rows = {r[0]: r for r in self.p.table_rows()}
        self.assertEqual(rows["wallboard"][1], "read", "the list shows the scope")
        reader = Api(self.s.base)
        reader.bearer = token
        self.assertEqual(reader.request("GET", "/api/v1/pairs").status, 200)
        r = reader.request("POST", "/api/v1/tokens", {"name": "more"})
        self.assertEqual(r.status, 403, r.text)
        self.assertEqual(r.json()["error"]["code"], "read_only_token")

    def test_23b_log_out_everywhere_from_the_account_page(self):
        self.s.api.post("/api/v1/users", {"username": "lou", "password": "lou-password-1", "role": "viewer"},
                        expect=201)
        elsewhere = Api(self.s.base).login("lou", "lou-password-1")
        self.p.login("lou", "lou-password-1")
        self.p.open("/account")
        question = self.p.click_confirm_and_wait_load(self.p.button("Log out everywhere"))
        self.assertIn("every device", question)
        self.assertEqual(self.p.path(), "/login")
        self.p.open("/account")
        self.assertEqual(self.p.path(), "/login", "this session ended")
        self.assertEqual(elsewhere.request("GET", "/api/v1/auth/me").status, 401, "and the one elsewhere")

    def test_23c_the_audit_log_lists_who_did_what(self):
        secret = self.s.api.post("/api/v1/tokens", {"name": "audited", "scope": "read"}, expect=201)["token"]
        self.p.open("/")
        self.p.click_and_wait_load(self.p.link("Audit"))
        self.assertEqual(self.p.path(), "/audit")
        self.assertEqual(self.h1(), "Audit log")
        rows = self.p.table_rows()
        self.assertEqual(rows[0][1:3], ["admin", "token.create"], "newest first")
        self.assertTrue(any(r[1] == "admin" and r[2] == "session.login" for r in rows), rows)
        self.p.fill({"action": "token"}, self.p.css("form.filters"))
        self.p.click_and_wait_load(self.p.button("Filter"))
        rows = self.p.table_rows()
        self.assertTrue(all(r[2].startswith("token.") for r in rows), rows)
        self.assertIn("name \"audited\", scope read", [r[4] for r in rows])
        self.assertNotIn(secret, self.d.page_source, "no token on the page")

    def test_24_pages_forbid_inline_scripts(self):
        admin = Api(self.s.base).login(ADMIN, ADMIN_PW)
        anonymous = Api(self.s.base)
        for client, path in ((anonymous, "/login"), (admin, "/"), (admin, "/pairs"), (admin, "/tasks")):
            r = client.request("GET", path)
            self.assertEqual(r.status, 200, path)
            csp = r.headers.get("Content-Security-Policy", "")
            self.assertIn("script-src 'self'", csp, path)
            self.assertNotIn("unsafe-inline", csp, path)
            self.assertIsNone(re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), f"{path} has an inline script")
        cookie = Api(self.s.base).request("POST", "/api/v1/auth/login", {"username": ADMIN, "password": ADMIN_PW})
        self.assertIn("HttpOnly", cookie.headers.get("Set-Cookie", ""))
        self.assertIn("SameSite=Strict", cookie.headers.get("Set-Cookie", ""))
        # The browser agrees: no page so far broke the policy.
        self.p.open("/")
        violations = [e["message"] for e in self.p.console_errors() if "Content Security Policy" in e["message"]]
        self.assertEqual(violations, [])

    def test_25_dashboard_refreshes_itself(self):
        pid = pair()
        archive()
        self.p.open("/")
        self.d.execute_script("window.__marker = 1;")
        tile = f".tile[data-pair='{pid}']"
        self.assertNotIn("replicate", self.p.css(tile).text)
        task = self.s.api.post(f"/api/v1/pairs/{pid}/replicate", {}, expect=202)
        self.assertEqual(self.s.api.wait_task(task["id"])["status"], "succeeded")
        self.p.until(lambda d: "Last task: replicate succeeded" in self.p.css(tile).text, timeout=15,
                     message="the dashboard did not show the new task by itself")
        self.assertEqual(self.d.execute_script("return window.__marker"), 1, "the dashboard was reloaded")
        self.assertEqual(self.s.lab.vm_status("drc1", 9100), "running")


class T26Monitoring(UiTest):
    def checkbox(self, name, value, scope=None):
        return (scope or self.d).find_element(By.CSS_SELECTOR, f"input[type='checkbox'][name='{name}'][value='{value}']")

    def target_row(self, name):
        for tr in self.p.css_all("table.targets tbody tr"):
            cells = tr.find_elements(By.TAG_NAME, "td")
            if cells and cells[0].text == name:
                return tr
        return None

    def test_26_add_a_webhook_target_through_the_form(self):
        if "target" in self.s.ids:
            self.skipTest("the target exists already")
        receiver = self.s.receiver
        self.p.open("/settings")
        self.assertEqual(self.h1(), "Settings")
        self.p.click_and_wait_load(self.p.link("Add target"))
        self.assertEqual(self.p.path(), "/settings/targets/new")
        form = self.p.css("#target-form")
        self.assertEqual(self.p.field("kind", form).get_attribute("value"), "webhook", "webhook is the default kind")
        # Only the chosen kind's settings show.
        shown = lambda: {f.get_attribute("data-kind") for f in self.p.css_all("fieldset[data-kind]") if f.is_displayed()}
        self.assertEqual(shown(), {"webhook"})
        self.p.fill({"kind": "smtp"}, form)
        self.assertEqual(shown(), {"smtp"})
        self.p.fill({"kind": "webhook"}, form)
        self.assertEqual(shown(), {"webhook"})
        self.p.fill({"name": "ops webhook", "url": receiver.url, "secret": WEBHOOK_SECRET,
                     "min_severity": "warning"}, form)
        for kind in ("host_down", "service_down"):
            self.checkbox("kinds", kind, form).click()
        self.p.click_and_wait_load(self.p.button("Add target", form))
        self.assertEqual(self.p.path(), "/settings", self.p.flash())
        self.assertIn("Notification target ops webhook added.", self.p.flash())
        row = self.target_row("ops webhook")
        self.assertIsNotNone(row, "the target is not listed")
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        self.assertEqual(cells[1:6], ["webhook", receiver.url, "warning and critical\nhost_down, service_down",
                                      "stored", "enabled"])
        self.assertNotIn(WEBHOOK_SECRET, self.d.page_source, "the secret is write-only")
        targets = self.s.api.get("/api/v1/notification-targets")
        stored = [t for t in targets if t["name"] == "ops webhook"][0]
        self.s.ids["target"] = stored["id"]
        self.assertEqual((stored["kind"], stored["url"], stored["has_secret"], stored["kinds"], stored["enabled"]),
                         ("webhook", receiver.url, True, ["host_down", "service_down"], True))
        self.assertNotIn("secret", stored)

        # Send test: the receiver gets it, signed with the secret typed in the form.
        before = len(receiver.received)
        self.p.click_and_wait_load(self.p.button("Send test", self.target_row("ops webhook")))
        self.assertEqual(self.p.path(), "/settings")
        self.assertIn("Test notice to ops webhook: sent (1 attempt). delivered: HTTP 204", self.p.flash())
        self.assertEqual(len(self.p.css_all(".flash.ok")), 1)
        got = receiver.received[before]
        self.assertEqual(json.loads(got["body"])["event"], "test")
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), got["body"], hashlib.sha256).hexdigest()
        self.assertEqual(got["headers"].get("x-drswitch-signature"), expected)

        # Edit: a bad URL is refused next to the field, what was typed stays, the secret is kept.
        self.p.click_and_wait_load(self.p.link("Edit", self.target_row("ops webhook")))
        self.assertEqual(self.p.path(), f"/settings/targets/{stored['id']}/edit")
        form = self.p.css("#target-form")
        self.assertEqual(self.p.field("url", form).get_attribute("value"), receiver.url)
        self.assertEqual(self.p.field("secret", form).get_attribute("value"), "", "secrets are never sent back")
        hint = self.p.field("secret", form).find_element(By.XPATH, "./ancestor::label[1]").text
        self.assertIn("stored — leave empty to keep", hint)
        self.assertTrue(self.checkbox("kinds", "service_down", form).is_selected())
        self.assertFalse(self.checkbox("kinds", "task_failed", form).is_selected())
        self.assertEqual(len(self.p.buttons("Save", form)), 1)
        self.p.fill({"name": "ops hook", "url": "ftp://files.example"}, form)
        self.checkbox("kinds", "failover", form).click()
        self.p.click_and_wait_load(self.p.button("Save", form))
        url = self.p.field("url")
        self.assertIn("invalid", url.get_attribute("class").split())
        errors = url.find_elements(By.XPATH, "./ancestor::label[1]//*[contains(@class,'field-error')]")
        self.assertEqual([e.text for e in errors], ["must be an http:// or https:// URL of a host name or IPv4 address"])
        self.assertEqual(self.p.field("name").get_attribute("value"), "ops hook", "the name typed was kept")
        self.assertEqual(url.get_attribute("value"), "ftp://files.example")
        self.assertTrue(self.checkbox("kinds", "failover").is_selected(), "the ticked kinds were kept")
        self.assertEqual(self.s.api.get(f"/api/v1/notification-targets/{stored['id']}")["name"], "ops webhook")
        self.p.fill({"name": "ops webhook", "url": receiver.url})
        self.checkbox("kinds", "failover").click()
        self.p.click_and_wait_load(self.p.button("Save"))
        self.assertEqual(self.p.path(), "/settings")
        self.assertIn("Notification target ops webhook saved.", self.p.flash())
        after = self.s.api.get(f"/api/v1/notification-targets/{stored['id']}")
        self.assertTrue(after["has_secret"], "saving without retyping the secret keeps it")
        self.assertEqual(after["kinds"], ["host_down", "service_down"])

    def test_26a_a_command_target_is_added_and_deleted(self):
        self.p.open("/settings/targets/new")
        form = self.p.css("#target-form")
        self.p.fill({"name": "sms gateway", "kind": "command", "min_severity": "critical"}, form)
        self.p.fill({"argv": "/usr/bin/true\n--to\n+90 555 000 0000\n"}, form)
        self.p.click_and_wait_load(self.p.button("Add target", form))
        self.assertIn("Notification target sms gateway added.", self.p.flash())
        stored = [t for t in self.s.api.get("/api/v1/notification-targets") if t["name"] == "sms gateway"][0]
        self.assertEqual((stored["kind"], stored["argv"], stored["min_severity"], stored["kinds"]),
                         ("command", ["/usr/bin/true", "--to", "+90 555 000 0000"], "critical", []))
        cells = [td.text for td in self.target_row("sms gateway").find_elements(By.TAG_NAME, "td")]
        self.assertEqual(cells[2:4], ["/usr/bin/true --to +90 555 000 0000", "critical only\nevery kind"])
        self.p.click_and_wait_load(self.p.button("Send test", self.target_row("sms gateway")))
        self.assertIn("Test notice to sms gateway: sent", self.p.flash())
        # Delete asks first; dismissing keeps it.
        self.p.button("Delete", self.target_row("sms gateway")).click()
        self.assertIn("Delete the notification target sms gateway?", self.p.confirm(accept=False))
        self.s.api.get(f"/api/v1/notification-targets/{stored['id']}", expect=200)
        self.p.click_confirm_and_wait_load(self.p.button("Delete", self.target_row("sms gateway")), accept=True)
        self.assertEqual(self.p.path(), "/settings")
        self.assertIn("Notification target deleted.", self.p.flash())
        self.assertIsNone(self.target_row("sms gateway"))
        self.s.api.get(f"/api/v1/notification-targets/{stored['id']}", expect=404)

    def test_27_change_thresholds_through_the_form(self):
        before = self.s.api.get("/api/v1/alert-settings")
        self.addCleanup(self.s.api.put, "/api/v1/alert-settings",
                        {k: before[k] for k in ("cpu_pct", "mem_pct", "disk_pct", "samples", "tolerance_secs")})
        self.p.open("/settings")
        form = self.p.css("#thresholds form")
        for name in ("cpu_pct", "mem_pct", "disk_pct", "samples"):
            self.assertEqual(float(self.p.field(name, form).get_attribute("value")), float(before[name]), name)
        self.assertEqual(self.p.field("tolerance_secs", form).get_attribute("value"), "")
        self.assertIn("once every 1 s", self.p.css("#thresholds").text, "the probe interval is shown")
        self.assertEqual(self.p.css("#effective-tolerance").text, "2 min")
        # A bad value is refused next to its field; the rest of what was typed stays.
        self.p.fill({"cpu_pct": "85.5", "samples": "0", "tolerance_secs": "300"}, form)
        self.p.click_and_wait_load(self.p.button("Save thresholds"))
        samples = self.p.field("samples")
        errors = samples.find_elements(By.XPATH, "./ancestor::label[1]//*[contains(@class,'field-error')]")
        self.assertEqual([e.text for e in errors], ["must be an integer from 1 to 100"])
        self.assertEqual(self.p.field("cpu_pct").get_attribute("value"), "85.5")
        self.assertEqual(self.p.field("tolerance_secs").get_attribute("value"), "300")
        self.assertEqual(self.s.api.get("/api/v1/alert-settings")["cpu_pct"], before["cpu_pct"], "nothing saved")
        self.p.fill({"samples": before["samples"]})
        self.p.click_and_wait_load(self.p.button("Save thresholds"))
        self.assertEqual(self.p.path(), "/settings")
        self.assertIn("Thresholds saved", self.p.flash())
        got = self.s.api.get("/api/v1/alert-settings")
        self.assertEqual((got["cpu_pct"], got["tolerance_secs"], got["effective_tolerance_secs"], got["samples"]),
                         (85.5, 300, 300, before["samples"]))
        self.assertEqual(self.p.css("#effective-tolerance").text, "5 min")
        self.assertEqual(self.p.field("cpu_pct").get_attribute("value"), "85.5")
        # Empty tolerance: back to FAILOVER_TOLERANCE_SECS.
        self.p.fill({"tolerance_secs": "", "cpu_pct": "90"})
        self.p.click_and_wait_load(self.p.button("Save thresholds"))
        got = self.s.api.get("/api/v1/alert-settings")
        self.assertEqual((got["cpu_pct"], got["tolerance_secs"], got["effective_tolerance_secs"]), (90, None, 120))
        self.assertEqual(self.p.css("#effective-tolerance").text, "2 min")

    def test_28_alerts_page_lists_a_service_alert(self):
        dc, _ = pinned()
        target = webhook_target()
        target_name = self.s.api.get(f"/api/v1/notification-targets/{target}")["name"]
        self.addCleanup(self.s.lab.clear_hook, "dc1", "services-stopped")
        opened = service_alert("pvedaemon", resolve=False)
        # The webhook target wants service_down: wait until it was told.
        wait_until(lambda: any(d["status"] == "sent" for d in
                               find_alert("service_down", dc, "pvedaemon", "open")["deliveries"]),
                   timeout=30, what="the opened alert delivered")
        self.p.open("/alerts")
        self.assertEqual(self.h1(), "Alerts")
        self.assertEqual(self.p.css("header nav a.active").text, "Alerts")
        row = self.p.css(f"#alert-list tr[data-alert='{opened['id']}']")
        self.assertEqual(row.get_attribute("data-state"), "open")
        cells = row.find_elements(By.TAG_NAME, "td")
        self.assertEqual(cells[0].text, "warning\nservice_down")
        self.assertIn("badge warn", cells[0].find_element(By.CSS_SELECTOR, ".badge").get_attribute("class"))
        link = cells[1].find_element(By.TAG_NAME, "a")
        self.assertEqual((link.text, urllib.parse.urlsplit(link.get_attribute("href")).path), ("dc1", f"/hypervisors/{dc}"))
        self.assertIn("pvedaemon on dc1 is", cells[2].text)
        self.assertRegex(cells[4].text, r"^open \d+ s$")
        self.assertIn(f"sent {target_name} opened", cells[5].text)
        # Open alerts come first, in their own table.
        open_table = self.d.find_element(By.XPATH, "//h2[@id='open-alerts']/following-sibling::div[1]")
        self.assertIn(opened["id"], [r.get_attribute("data-alert") for r in open_table.find_elements(By.CSS_SELECTOR, "tbody tr")])

        # Started again: the alert resolves and moves to the history.
        self.s.lab.clear_hook("dc1", "services-stopped")
        wait_until(lambda: find_alert("service_down", dc, "pvedaemon", "resolved"), timeout=40,
                   what="the alert resolved")
        wait_until(lambda: "alert.resolved" in self.s.receiver.events(), timeout=30, what="the recovery notice")
        self.p.open("/alerts?state=resolved")
        self.assertEqual(self.p.field("state").get_attribute("value"), "resolved", "the filter stays chosen")
        self.assertEqual(self.p.css_all("#open-alerts"), [], "only resolved alerts are asked for")
        row = self.p.css(f"#alert-list tr[data-alert='{opened['id']}']")
        self.assertEqual(row.get_attribute("data-state"), "resolved")
        resolved = row.find_elements(By.TAG_NAME, "td")[4].text
        self.assertIn("pvedaemon on dc1 runs again", resolved)
        notified = row.find_elements(By.TAG_NAME, "td")[5].text
        self.assertIn(f"sent {target_name} opened", notified)
        self.assertIn(f"{target_name} resolved", notified)
        self.p.open("/alerts?state=open")
        self.assertEqual(self.p.css_all(f"#alert-list tr[data-alert='{opened['id']}']"), [])
        self.assertEqual(self.p.css_all("#alert-history"), [])

    def test_29_hypervisor_page_shows_health_and_charts(self):
        dc, _ = pinned()
        probed(dc, 5)
        self.p.open(f"/hypervisors/{dc}")
        health = self.p.css("#health")
        self.assertEqual(health.get_attribute("data-reachability"), "up")
        self.assertEqual(health.find_element(By.CSS_SELECTOR, "h2 .badge").text, "up")
        self.assertIn("badge ok", health.find_element(By.CSS_SELECTOR, "h2 .badge").get_attribute("class"))
        dl = health.find_element(By.CSS_SELECTOR, "dl.health")
        facts = {dt.text: dd.text for dt, dd in zip(dl.find_elements(By.TAG_NAME, "dt"), dl.find_elements(By.TAG_NAME, "dd"))}
        self.assertRegex(facts["Last probe"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)$")
        self.assertTrue(facts["Proxmox API"].startswith("answers"), facts)
        self.assertTrue(facts["SSH"].startswith("answers"), facts)
        self.assertRegex(facts["Now"], r"CPU [\d.]+ % · memory \d+ % \(.+ free\) · root disk \d+ %")
        services = {li.get_attribute("data-service"): li.text for li in health.find_elements(By.CSS_SELECTOR, "ul.services li")}
        self.assertEqual(services.get("pveproxy"), "running pveproxy")
        # Charts: reachability, CPU, memory, disk; drawn as SVG by the server.
        charts = health.find_elements(By.CSS_SELECTOR, "svg.hchart")
        self.assertEqual(len(charts), 4)
        captions = [f.find_element(By.TAG_NAME, "figcaption").text for f in health.find_elements(By.CSS_SELECTOR, "figure.hchart")]
        self.assertEqual([c.split(" ")[0] for c in captions], ["Reachability", "CPU", "Memory", "Disk"])
        self.assertGreaterEqual(len(charts[1].find_elements(By.CSS_SELECTOR, "polyline.series")), 1, "no CPU line")
        self.assertGreaterEqual(len(charts[0].find_elements(By.CSS_SELECTOR, "rect.r-up")), 1, "no reachability")
        self.assertEqual(len(charts[1].find_elements(By.CSS_SELECTOR, "line.threshold")), 1, "no threshold line")
        self.assertEqual(self.d.execute_script("return document.querySelectorAll('[style]').length"), 0,
                         "no inline styles (the CSP refuses them)")
        # The section refreshes itself without reloading the page.
        self.d.execute_script("window.__marker = 1;")
        first = health.find_element(By.CSS_SELECTOR, "dl.health dd").text
        self.p.until(lambda d: self.p.css("#health dl.health dd").text != first, timeout=20,
                     message="the health section did not refresh")
        self.assertEqual(self.d.execute_script("return window.__marker"), 1, "the page was reloaded")
        # A host the monitor has never probed says so.
        spare = self.s.api.post("/api/v1/hypervisors", {"name": "spare-health", "host": "127.0.0.1", "node": "spare",
                                                         "role": "drc"}, expect=201)
        self.addCleanup(self.s.api.delete, f"/api/v1/hypervisors/{spare['id']}")
        self.p.open(f"/hypervisors/{spare['id']}")
        health = self.p.css("#health")
        self.assertEqual(health.get_attribute("data-reachability"), "unchecked")
        self.assertEqual(health.find_element(By.CSS_SELECTOR, "h2 .badge").text, "not checked yet")
        self.assertIn("SSH host key is pinned", health.text)
        self.assertIn("No samples yet", health.text)
        self.assertEqual(health.find_elements(By.CSS_SELECTOR, "svg"), [])

    def test_29a_dashboard_colours_hosts_by_reachability(self):
        dc, drc = pinned()
        probed(dc, 2)
        probed(drc, 2)
        # A host that stops answering: drc1's details, pinned, then a wrong
        # ssh user and API port (neither unpins the key).
        body = {**self.s.lab.hypervisor_body("drc1", "drc"), "name": "ghost"}
        ghost = self.s.api.post("/api/v1/hypervisors", body, expect=201)["id"]
        self.addCleanup(self.s.api.delete, f"/api/v1/hypervisors/{ghost}")
        self.assertTrue(self.s.api.post(f"/api/v1/hypervisors/{ghost}/check", {}, expect=200)["ok"])
        closed = harness.free_port()
        self.s.api.put(f"/api/v1/hypervisors/{ghost}", {"ssh_user": "nobody", "api_port": closed})
        self.assertIsNotNone(self.s.api.get(f"/api/v1/hypervisors/{ghost}")["host_key_fingerprint"])
        wait_until(lambda: host_status(ghost)["reachability"] == "unreachable", timeout=30,
                   what="the ghost host unreachable")
        self.p.open("/")
        tile = lambda hid: self.p.css(f".tile[data-hypervisor='{hid}']")
        self.assertEqual(tile(dc).get_attribute("data-reachability"), "up")
        self.assertIn("ok", tile(dc).get_attribute("class").split())
        self.assertEqual(tile(dc).find_element(By.CSS_SELECTOR, ".badge").text, "up")
        self.assertEqual(tile(ghost).get_attribute("data-reachability"), "unreachable")
        self.assertIn("bad", tile(ghost).get_attribute("class").split(), "a host that does not answer is red")
        self.assertEqual(tile(ghost).find_element(By.CSS_SELECTOR, ".badge").text, "unreachable")
        # The open-alert count links to the alerts.
        opened = len(api_alerts(state="open"))
        count = self.p.css("#open-alerts")
        summary = self.p.css(".alert-summary")
        if opened:
            self.assertEqual(count.text, f"{opened} open alert{'s' if opened != 1 else ''} — see Alerts")
            self.assertTrue({"warn", "bad"} & set(summary.get_attribute("class").split()))
        else:
            self.assertEqual(count.text, "No open alerts")
        self.p.click_and_wait_load(count)
        self.assertEqual(self.p.path(), "/alerts")
        # The live refresh keeps it current: an alert that opens shows up by itself.
        self.p.open("/")
        self.d.execute_script("window.__marker = 1;")
        self.addCleanup(self.s.lab.clear_hook, "dc1", "services-stopped")
        service_alert("pvestatd", resolve=False)
        now_open = len(api_alerts(state="open"))
        self.p.until(lambda d: self.p.css("#open-alerts").text.startswith(f"{now_open} open alert"), timeout=15,
                     message="the dashboard did not show the new alert by itself")
        self.assertEqual(self.d.execute_script("return window.__marker"), 1, "the dashboard was reloaded")
        self.assertIn("pvestatd on dc1 is dead", self.p.css(".alert-summary ul").text)
        self.assertIn("1 open alert", tile(dc).text, "the host's tile says it has an alert")
        self.assertEqual(tile(dc).get_attribute("data-reachability"), "up", "a stopped service is not a host down")
        # A host the monitor stops probing (a new address unpins its key):
        # its page says that what it shows is not current.
        self.s.api.put(f"/api/v1/hypervisors/{ghost}", {"ssh_port": harness.free_port()})
        self.assertIsNone(self.s.api.get(f"/api/v1/hypervisors/{ghost}")["host_key_fingerprint"])
        self.p.open(f"/hypervisors/{ghost}")
        warning = self.p.until(lambda d: self.p.css_all("#health .stale-probe"), timeout=30,
                               message="no warning that the probes stopped")[0]
        self.assertIn("host key is not pinned", warning.text)


class T30Screenshots(UiTest):
    def test_30_screenshots(self):
        pid = pair()
        dc, _ = pinned()
        # The pair's chart needs two backups to draw.
        while len([t for t in api_tasks(pair_id=pid, status="succeeded")["items"]
                   if t["kind"] in ("backup", "replicate")]) < 2:
            task = self.s.api.post(f"/api/v1/pairs/{pid}/backup", {}, expect=202)
            self.assertEqual(self.s.api.wait_task(task["id"])["status"], "succeeded")
        # Alerts to show: one resolved, one open (pvestatd stays stopped), told to the webhook.
        webhook_target()
        service_alert("pvedaemon", resolve=True)
        service_alert("pvestatd", resolve=False)
        # A CPU that moves, so the chart has a shape: a few probes at each level.
        for level in (0.18, 0.46, 0.71, 0.38, 0.12):
            self.s.lab.hook("dc1", "node-cpu", str(level))
            wait_until(lambda: [round(x["cpu_pct"] or 0) for x in host_status(dc)["history"][-3:]]
                       == [round(level * 100)] * 3, timeout=20, interval=0.2, what=f"CPU at {level}")
        self.s.lab.clear_hook("dc1", "node-cpu")
        self.p.open("/")
        self.p.until(lambda d: self.p.css_all(".tile"), message="the dashboard shows no tiles")
        self.assertIn("open alert", self.p.css("#open-alerts").text)
        self.p.screenshot("dashboard.png")
        self.p.open("/pairs")
        self.p.screenshot("pairs.png")
        self.p.open(f"/pairs/{pid}")
        self.assertEqual(len(self.p.css_all("svg.chart")), 1, "two backups draw the chart")
        self.p.screenshot("pair.png")
        self.p.open("/alerts")
        self.assertGreaterEqual(len(self.p.css_all("#alert-list tr[data-state='open']")), 1)
        self.assertGreaterEqual(len(self.p.css_all("#alert-list tr[data-state='resolved']")), 1)
        self.p.screenshot("alerts.png")
        self.p.open("/settings")
        self.assertGreaterEqual(len(self.p.css_all("table.targets tbody tr")), 1)
        self.p.screenshot("settings.png")
        self.p.open(f"/hypervisors/{dc}")
        self.assertEqual(len(self.p.css_all("#health svg.hchart")), 4)
        self.d.execute_script("document.getElementById('health').scrollIntoView();")
        self.p.screenshot("hypervisor-health.png")
        for name in ("dashboard.png", "pairs.png", "pair.png", "alerts.png", "settings.png", "hypervisor-health.png"):
            with open(os.path.join(harness.SCREENSHOTS, name), "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
            width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            self.assertEqual((width, height), (harness.WIDTH, harness.HEIGHT), name)

DRILL_VMID = 9200
DRILL_STEPS = ["preflight", "push", "restore", "boot", "stays up", "destroy drill VM"]
NETWORK_MAP = {"vmbr0": "vmbr10", "vmbr1": {"bridge": "vmbr11", "tag": 20}}


def drill_ready():
    """The main pair with a verified archive and its drill VMID set."""
    pid = pair()
    archive()
    if SUITE.api.get(f"/api/v1/pairs/{pid}").get("drill_vmid") != DRILL_VMID:
        SUITE.api.put(f"/api/v1/pairs/{pid}", {"drill_vmid": DRILL_VMID})
    return pid


class T31Switch(UiTest):
    """Failover, failback and drills from a pair's page (SPEC 5.3). Runs
    last; the failover and failback use a pair of their own (db01)."""

    def field_errors(self, name):
        return [e.text for e in self.p.field(name).find_elements(
            By.XPATH, "./ancestor::label[1]//*[contains(@class,'field-error')]")]

    def state(self):
        """The h1's state badge as (API word, text, class)."""
        badge = self.p.css("h1 [data-state]")
        return badge.get_attribute("data-state"), badge.text, badge.get_attribute("class")

    def events(self):
        return self.p.css_all("#events details.event")

    def steps(self, event):
        """An event's steps as (name, result, took) rows, read from the page."""
        rows = event.find_elements(By.CSS_SELECTOR, "table.steps tbody tr")
        return [tuple(self.p.text_of(td) for td in r.find_elements(By.TAG_NAME, "td"))[:5] for r in rows]

    def test_31_drill_vmid_and_network_map_through_the_edit_form(self):
        pid = pair()
        self.p.open(f"/pairs/{pid}/edit")
        fields = self.p.css("#switch-fields")
        self.assertEqual(fields.find_element(By.TAG_NAME, "legend").text, "Failover and drills")
        self.assertEqual(self.p.field("network_map").tag_name, "textarea")
        self.assertFalse(self.p.field("auto_failover").is_selected())
        self.assertFalse(self.p.field("shutdown_returned_source").is_selected())
        # Broken JSON and a value that is no bridge are refused next to the field; what was typed stays.
        for typed, error in (('{"vmbr0": ', "is not valid JSON"),
                             ('["vmbr0", "vmbr10"]', "must be a JSON object"),
                             ('{"vmbr0": 10}', '"vmbr0" must map to a bridge name or to {"bridge": "vmbr10", "tag": 20}'),
                             ('{"vmbr0": "vm br"}', "is not a bridge name"),
                             ('{"vmbr0": {"bridge": "vmbr10", "tag": 5000}}', "VLAN tag 5000 must be from 1 to 4094")):
            self.p.fill({"drill_vmid": DRILL_VMID, "network_map": typed})
            self.p.click_and_wait_load(self.p.button("Save"))
            self.assertEqual(self.p.path(), f"/pairs/{pid}", "the form is shown again at its action")
            errors = self.field_errors("network_map")
            self.assertEqual(len(errors), 1, f"{typed}: no error next to network_map ({self.p.flash()})")
            self.assertIn(error, errors[0], typed)
            self.assertIn("invalid", self.p.field("network_map").get_attribute("class").split())
            self.assertEqual(self.p.field("network_map").get_attribute("value"), typed, "what was typed is kept")
            self.assertEqual(self.p.field("drill_vmid").get_attribute("value"), str(DRILL_VMID))
            self.assertEqual(len(self.p.css_all(".field-error")), 1, "only the faulty field is marked")
        stored = self.s.api.get(f"/api/v1/pairs/{pid}")
        self.assertEqual((stored["drill_vmid"], stored["network_map"]), (None, {}), "nothing was saved")
        # A good one is saved and shown.
        self.p.fill({"drill_vmid": DRILL_VMID, "network_map": json.dumps(NETWORK_MAP),
                     "shutdown_returned_source": True})
        self.p.click_and_wait_load(self.p.button("Save"))
        self.assertEqual(self.p.path(), f"/pairs/{pid}", self.p.flash())
        self.assertIn("saved.", self.p.flash())
        facts = self.facts()
        self.assertEqual(facts["Network map"], "vmbr0 → vmbr10, vmbr1 → vmbr11 (VLAN 20)")
        self.assertEqual(facts["DC VM back while failed over"], "stopped by drswitch")
        self.assertEqual(facts["Auto failover"], "no: an operator fails over")
        assurance = self.facts(self.p.css("#assurance"))
        drc_name = self.s.api.get(f"/api/v1/hypervisors/{stored['dst_hypervisor_id']}")["name"]
        self.assertEqual(assurance["Drill VM"], f"VM {DRILL_VMID} on {drc_name}, destroyed after each drill")
        stored = self.s.api.get(f"/api/v1/pairs/{pid}")
        self.assertEqual((stored["drill_vmid"], stored["network_map"], stored["shutdown_returned_source"],
                          stored["auto_failover"]), (DRILL_VMID, NETWORK_MAP, True, False))
        # The edit form shows what is stored; emptying the map clears it.
        self.p.open(f"/pairs/{pid}/edit")
        self.assertEqual(self.p.field("drill_vmid").get_attribute("value"), str(DRILL_VMID))
        self.assertEqual(json.loads(self.p.field("network_map").get_attribute("value")), NETWORK_MAP)
        self.assertTrue(self.p.field("shutdown_returned_source").is_selected())
        self.p.fill({"network_map": "", "shutdown_returned_source": False})
        self.p.click_and_wait_load(self.p.button("Save"))
        self.assertIn("saved.", self.p.flash())
        self.assertEqual(self.facts()["Network map"], "none: the replica keeps the DC bridges")
        stored = self.s.api.get(f"/api/v1/pairs/{pid}")
        self.assertEqual((stored["drill_vmid"], stored["network_map"], stored["shutdown_returned_source"]),
                         (DRILL_VMID, {}, False), "an emptied map is cleared; the drill VMID stays")
        # Put the map back: the drill below runs with it (a drill keeps every NIC's link down instead).
        self.s.api.put(f"/api/v1/pairs/{pid}", {"network_map": NETWORK_MAP})

    def test_32_run_a_drill_from_the_pair_page(self):
        pid = drill_ready()
        drc = self.s.api.get(f"/api/v1/pairs/{pid}")["dst_hypervisor_id"]
        drc_name = self.s.api.get(f"/api/v1/hypervisors/{drc}")["name"]
        before = len(self.s.api.get(f"/api/v1/events?pair_id={pid}"))
        replica = self.s.lab.vm_status("drc1", 9100)
        self.p.open(f"/pairs/{pid}")
        form = self.p.css("#drill-form")
        options = [o.get_attribute("value") for o in form.find_elements(By.CSS_SELECTOR, "select[name='archive_id'] option")]
        self.assertEqual(options[0], "", "the newest verified archive is the default")
        self.assertGreaterEqual(len(options), 2, "each verified archive can be chosen")
        # Dismissing the question runs nothing.
        self.p.button("Run drill").click()
        question = self.p.confirm(accept=False)
        self.assertEqual(question, f"Restores the chosen archive on {drc_name} as an isolated VM {DRILL_VMID} "
                                   "(new MAC addresses, network links down), checks it keeps running for 2 s, then "
                                   "destroys it. The replica VM 9100 and the DC VM are not touched. Continue?")
        self.assertEqual(self.p.path(), f"/pairs/{pid}")
        self.p.click_confirm_and_wait_load(self.p.button("Run drill"), accept=True)
        tid = self.task_id_from_path()
        self.assertIn("drill", self.h1())
        self.p.until(lambda d: self.task_state()[1] in FINAL, timeout=90, message="the drill never ended")
        self.assertEqual(self.task_state()[1], "succeeded", f"log: {self.p.css('#task-log').text[-2000:]}")
        self.assertEqual(self.s.lab.vm_status("drc1", DRILL_VMID), "missing", "the drill VM was destroyed")
        self.assertEqual(self.s.lab.vm_status("drc1", 9100), replica, "the replica was not touched")

        self.p.open(f"/pairs/{pid}")
        events = self.events()
        self.assertEqual(len(events), before + 1)
        newest = events[0]
        self.assertEqual((newest.get_attribute("data-kind"), newest.get_attribute("data-status")),
                         ("drill", "succeeded"))
        self.assertIsNotNone(newest.get_attribute("open"), "the newest event is open")
        head = self.p.text_of(newest.find_element(By.CSS_SELECTOR, "summary"))
        self.assertRegex(head, r"^Drill passed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\) took [\d.]+ s "
                               r"RTO [\d.]+ s Drill passed: .+ booted as VM 9200 on .+ kept running")
        steps = self.steps(newest)
        self.assertEqual([s[0] for s in steps], DRILL_STEPS)
        for name, result, at, took, detail in steps:
            self.assertEqual(result, "ok", f"{name}: {detail}")
            self.assertRegex(at, r"^\+[\d.]+ s$")
            self.assertRegex(took, r"^[\d.]+ s$")
            self.assertTrue(detail, f"{name} has no detail")
        self.assertIn("kept running for 2 s", steps[4][4])
        link = newest.find_element(By.XPATH, ".//a[normalize-space()=\"The task's log\"]")
        self.assertTrue(link.get_attribute("href").endswith(f"/tasks/{tid}"))
        # Recovery assurance: the drill passed, with its measured RTO.
        drill = self.p.text_of(self.p.css("#assurance-drill"))
        self.assertRegex(drill, r"^passed RTO [\d.]+ s, \d+ s ago · task$")
        event = self.s.api.get(f"/api/v1/events?pair_id={pid}")[0]
        self.assertIn(f"RTO {event['rto_secs']:.1f} s", drill, "the page shows the event's RTO")
        restored = [t for t in api_tasks(pair_id=pid, status="succeeded")["items"] if t["kind"] in ("restore", "replicate")]
        self.assertRegex(self.p.text_of(self.p.css("#assurance-restore")),
                         r"^[\d.]+ s (restore|replicate \(backup and restore\)), \d+ (s|min) ago · task$" if restored
                         else r"^none in the recent tasks$")
        # Folded: the summary stays, the steps hide.
        newest.find_element(By.CSS_SELECTOR, "summary").click()
        self.assertIsNone(newest.get_attribute("open"))
        self.assertFalse(newest.find_element(By.CSS_SELECTOR, "table.steps").is_displayed())
        newest.find_element(By.CSS_SELECTOR, "summary").click()
        # The dashboard tile tells the last drill too.
        self.p.open("/")
        self.assertRegex(self.p.css(f".tile[data-pair='{pid}'] .drill").text, r"^Last drill: passed RTO [\d.]+ s · ")
        self.p.open(f"/pairs/{pid}")
        self.d.execute_script("document.getElementById('assurance').scrollIntoView();")
        self.p.screenshot("pair-drill.png")

    def test_33_fail_over_a_pair_from_its_page(self):
        dc, drc = pinned()
        drc_name = self.s.api.get(f"/api/v1/hypervisors/{drc}")["name"]
        # A pair of its own: nothing after this test uses it, since failed over it stays so.
        self.s.lab.create_vm("dc1", 102, "8M")
        p = self.s.api.post("/api/v1/pairs", {"name": "db01", "src_hypervisor_id": dc, "src_vmid": 102,
                                              "dst_hypervisor_id": drc, "dst_vmid": 9102}, expect=201)
        pid = self.s.ids["failed_over"] = p["id"]
        task = self.s.api.post(f"/api/v1/pairs/{pid}/replicate", {}, expect=202)
        self.assertEqual(self.s.api.wait_task(task["id"])["status"], "succeeded")
        self.assertEqual(self.s.lab.vm_status("drc1", 9102), "running")

        self.p.open(f"/pairs/{pid}")
        self.assertEqual(self.state(), ("protected", "protected", "badge ok"))
        self.assertEqual(self.p.css_all("#pair-state"), [], "a protected pair has no state banner")
        for label in ("Backup now", "Replicate now", "Fail over"):
            self.assertEqual(len(self.p.buttons(label)), 1, f"{label} is offered")
        self.assertEqual(self.p.buttons("Fail back"), [], "only a failed-over pair fails back")
        self.assertEqual(self.p.buttons("Run drill"), [], "no drill VMID, no drill")
        self.assertIn("needs a drill VMID", self.p.css("#switch").text)
        form = self.p.css("#failover-form")
        force = self.p.field("force", form)
        self.assertEqual(force.find_element(By.XPATH, "./ancestor::label[1]").text,
                         "Go on even if the DC VM cannot be fenced")
        self.assertFalse(force.is_selected())
        question = (f"Stops VM 102 on dc1 (shutdown, then stop, onboot 0) and starts the replica VM 9102 on "
                    f"{drc_name}.")
        # Forced, the question says what that risks; dismissed, nothing happens.
        force.click()
        self.p.button("Fail over").click()
        self.assertEqual(self.p.confirm(accept=False),
                         question + " If VM 102 on dc1 cannot be fenced, the replica starts anyway and both copies "
                                    "may run at once. Continue?")
        force.click()
        self.p.button("Fail over").click()
        self.assertEqual(self.p.confirm(accept=False), question + " Continue?")
        self.assertEqual(self.p.path(), f"/pairs/{pid}")
        self.assertEqual(self.s.api.get(f"/api/v1/pairs/{pid}")["state"], "protected")

        self.p.click_confirm_and_wait_load(self.p.button("Fail over"), accept=True)
        tid = self.task_id_from_path()
        self.assertIn("failover", self.h1())
        self.p.until(lambda d: self.task_state()[1] in FINAL, timeout=90, message="the failover never ended")
        self.assertEqual(self.task_state()[1], "succeeded", f"log: {self.p.css('#task-log').text[-2000:]}")
        self.assertFalse(self.s.api.get(f"/api/v1/tasks/{tid}")["force"])
        self.assertEqual(self.s.lab.vm_status("dc1", 102), "stopped", "the DC VM was fenced")
        self.assertEqual(self.s.lab.vm_status("drc1", 9102), "running", "the replica is the live copy")

        self.p.open(f"/pairs/{pid}")
        self.assertEqual(self.state(), ("failed_over", "failed over", "badge bad"))
        banner = self.p.css("#pair-state")
        self.assertIn(f"The replica VM 9102 on {drc_name} is the live copy; backups of the DC VM are paused.",
                      banner.text)
        self.assertIn("state-banner bad", banner.get_attribute("class"))
        self.p.screenshot("pair-failed-over.png")
        for label in ("Backup now", "Replicate now", "Restore", "Fail over", "Run drill"):
            self.assertEqual(self.p.buttons(label), [], f"a failed-over pair still offers {label!r}")
        self.assertEqual(len(self.p.buttons("Fail back")), 1)
        self.p.button("Fail back").click()
        self.assertEqual(self.p.confirm(accept=False),
                         f"Copies the DRC copy (VM 9102 on {drc_name}) back over VM 102 on dc1, stops the DRC copy "
                         "and starts VM 102 on dc1; the pair is then protected again. Continue?")
        newest = self.events()[0]
        self.assertEqual((newest.get_attribute("data-kind"), newest.get_attribute("data-status")),
                         ("failover", "succeeded"))
        steps = self.steps(newest)
        self.assertEqual([s[0] for s in steps], ["fence", "check replica", "start replica"])
        self.assertEqual({s[1] for s in steps}, {"ok"})
        self.assertIn("VM 102 on dc1", steps[0][4])
        self.assertIn("set onboot 0", steps[0][4])
        self.assertRegex(self.p.text_of(self.p.css("#assurance-failover")), r"^succeeded RTO [\d.]+ s, \d+ s ago$")
        # The pair list and the dashboard say it too.
        self.p.open("/pairs")
        self.assertEqual(self.row_with_link("db01")[4], "failed over")
        self.p.open("/")
        tile = self.p.css(f".tile[data-pair='{pid}']")
        self.assertEqual(tile.get_attribute("data-state"), "failed_over")
        self.assertIn("bad", tile.get_attribute("class").split())
        self.assertIn(f"Replica VM 9102 on {drc_name} is the live copy; backups paused", tile.text)
        # The API agrees: no backup of the old source while failed over.
        refused = self.s.api.request("POST", f"/api/v1/pairs/{pid}/backup", {})
        self.assertEqual(refused.status, 409, refused.text)

    def test_34_fail_back_from_the_pair_page(self):
        pid = self.s.ids.get("failed_over")
        if not pid:
            self.skipTest("needs the pair test_33 failed over")
        self.p.open(f"/pairs/{pid}")
        self.assertEqual(self.state()[0], "failed_over")
        question = self.p.click_confirm_and_wait_load(self.p.button("Fail back"), accept=True)
        self.assertIn("back over VM 102 on dc1", question)
        tid = self.task_id_from_path()
        self.assertIn("failback", self.h1())
        self.p.until(lambda d: self.task_state()[1] in FINAL, timeout=90, message="the failback never ended")
        self.assertEqual(self.task_state()[1], "succeeded", f"log: {self.p.css('#task-log').text[-2000:]}")
        self.assertEqual(self.s.lab.vm_status("dc1", 102), "running", "the DC VM runs again")
        self.assertEqual(self.s.lab.vm_status("drc1", 9102), "stopped", "the DRC copy was fenced")
        self.p.open(f"/pairs/{pid}")
        self.assertEqual(self.state(), ("protected", "protected", "badge ok"))
        self.assertEqual(self.p.css_all("#pair-state"), [], "no banner once protected again")
        for label in ("Backup now", "Replicate now", "Fail over"):
            self.assertEqual(len(self.p.buttons(label)), 1, f"{label} is offered again")
        self.assertEqual(self.p.buttons("Fail back"), [])
        newest = self.events()[0]
        self.assertEqual((newest.get_attribute("data-kind"), newest.get_attribute("data-status")),
                         ("failback", "succeeded"))
        steps = self.steps(newest)
        self.assertEqual({s[1] for s in steps}, {"ok"}, steps)
        self.assertEqual(steps[-1][0], "start the DC VM")
        self.assertIsNone(self.events()[1].get_attribute("open"), "only the newest event is open")


if __name__ == "__main__":
    unittest.main()
