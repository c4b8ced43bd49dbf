"""The browser test harness: one simulated Proxmox lab, one `drswitch serve`
and one headless Chromium (Selenium) for the whole suite.

Nothing is built here: scripts/test.sh builds target/debug/drswitch first.
Every process started here is stopped again by `Suite.stop()`, also when
starting failed half-way. No fixed sleeps: every wait polls a condition
against a deadline.
"""
import atexit
import ctypes
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    WebDriverException,
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

UI_DIR = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(UI_DIR))
sys.path.insert(0, os.path.join(REPO, "lab", "tests"))
from labfixture import LAB_PY, PYTHON, lab_cli  # noqa: E402

# Where `cargo build` put it: CARGO_TARGET_DIR when set, else ./target.
BINARY = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "debug", "drswitch")
SCREENSHOTS = os.path.join(REPO, "docs", "screenshots")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

ADMIN = "admin"
ADMIN_PW = "admin-password-1"
SECRET_KEY = "ui-test-secret-key-0123456789abcdef01234"  # 40 characters
WIDTH, HEIGHT = 1366, 900
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
FINAL = ("succeeded", "failed", "cancelled")


def _die_with_parent():
    """In the child: SIGTERM when the test process dies (Linux PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def wait_until(condition, timeout=30.0, interval=0.05, what="condition"):
    """Polls `condition` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except AssertionError as e:
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s" + (f": {last_error}" if last_error else ""))


def free_port():
    """A loopback TCP port nothing listens on (right now)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HttpResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body) if self.body else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def gone(element):
    """A wait condition: the element left the document (its page was
    replaced). chromedriver sometimes reports a node detached mid-check as
    an inspector error instead of a stale reference; both mean gone."""
    def check(_driver):
        try:
            element.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e) or "No node with given id" in str(e):
                return True
            raise
    return check


class Api:
    """The JSON API (and raw form posts) over urllib with its own cookie jar."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())
        self.bearer = None

    def request(self, method, path, body=None, content_type="application/json", headers=None):
        data = None
        hdrs = dict(headers or {})
        if self.bearer:
            hdrs.setdefault("Authorization", "Bearer " + self.bearer)
        if body is not None:
            if content_type == "application/json":
                data = json.dumps(body).encode()
            elif isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            else:
                data = urllib.parse.urlencode(body).encode()
            hdrs["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with self.opener.open(req, timeout=60) as r:
                return HttpResponse(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return HttpResponse(e.code, e.headers, e.read())

    def call(self, method, path, body=None, expect=None):
        r = self.request(method, path, body)
        if expect is not None and r.status != expect:
            raise AssertionError(f"{method} {path}: expected {expect}, got {r.status}: {r.text}")
        return r.json()

    def get(self, path, expect=200):
        return self.call("GET", path, expect=expect)

    def post(self, path, body=None, expect=None):
        return self.call("POST", path, {} if body is None else body, expect=expect)

    def put(self, path, body, expect=200):
        return self.call("PUT", path, body, expect=expect)

    def delete(self, path, expect=None):
        return self.call("DELETE", path, expect=expect)

    def login(self, username, password):
        self.post("/api/v1/auth/login", {"username": username, "password": password}, expect=200)
        return self

    def login_with_token(self, username, password):
        """Logs in, then acts with an API token: logging out everywhere in the
        browser ends every session of the user, and the suite's own setup
        must outlive it."""
        self.login(username, password)
        self.bearer = self.post("/api/v1/tokens", {"name": "ui suite"}, expect=201)["token"]
        return self

    def wait_task(self, task_id, timeout=90):
        """Polls a task until it reaches a final state; returns it."""
        return wait_until(
            lambda: (lambda t: t if t["status"] in FINAL else None)(self.get(f"/api/v1/tasks/{task_id}")),
            timeout=timeout, interval=0.1, what=f"task {task_id} finished")


class Receiver:
    """A webhook receiver on a random loopback port: records every POST
    (path, headers with lowercase names, body) and answers 204."""

    def __init__(self):
        import http.server

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"path": self.path, "body": body,
                                 "headers": {k.lower(): v for k, v in self.headers.items()}})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        return [json.loads(r["body"])["event"] for r in self.received]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class LabProcess:
    """`lab.py run` with the given hosts, stopped by closing its stdin."""

    def __init__(self, workdir, pubkey, hosts):
        self.stderr_path = os.path.join(workdir, "lab.stderr")
        self.stderr = open(self.stderr_path, "w")
        argv = [PYTHON, LAB_PY, "run", "--dir", os.path.join(workdir, "lab"), "--authorized-key", pubkey]
        for h in hosts:
            argv += ["--host", h]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, preexec_fn=_die_with_parent)
        self.hosts = {}
        watchdog = threading.Timer(60, self.proc.kill)
        watchdog.start()
        try:
            for line in self.proc.stdout:
                if line.strip() == "READY":
                    return
                info = json.loads(line)
                self.hosts[info["name"]] = info
        finally:
            watchdog.cancel()
        with open(self.stderr_path) as f:
            raise RuntimeError("the lab did not get ready:\n" + f.read())

    def root(self, host):
        return self.hosts[host]["root"]

    def create_vm(self, host, vmid, disk_size="8M"):
        return lab_cli("create-vm", "--root", self.root(host), "--node", host, "--vmid", vmid,
                       "--disk-size", disk_size, "--name", f"vm{vmid}", "--running")

    def vm_status(self, host, vmid):
        return lab_cli("vm-status", "--root", self.root(host), "--node", host, "--vmid", vmid)

    def hook(self, host, name, value=None):
        lab_cli("hook", "--root", self.root(host), name, *([value] if value is not None else []))

    def clear_hook(self, host, name):
        lab_cli("hook", "--root", self.root(host), "--clear", name, check=False)

    def dump_files(self, host):
        return sorted(os.listdir(self.hosts[host]["dump_dir_real"]))

    def hypervisor_body(self, name, role):
        """The JSON (and form) fields that register this lab host in drswitch."""
        h = self.hosts[name]
        return {"name": name, "role": role, "host": h["address"], "ssh_port": h["ssh_port"], "node": h["node"],
                "api_port": h["api_port"], "api_token_id": h["api_token_id"],
                "api_token_secret": h["api_token_secret"], "tls_fingerprint": h["tls_fingerprint"],
                "dump_dir": h["dump_dir"]}

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()


class Server:
    """`drswitch serve` on a random loopback port."""

    MARKER = re.compile(r"drswitch listening on http://(\S+)")
    ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, workdir):
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "drswitch.log")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": workdir,
            "DATABASE_URL": "sqlite://" + os.path.join(workdir, "drswitch.db"),
            "DATA_DIR": os.path.join(workdir, "data"),
            "LISTEN": "127.0.0.1:0",
            "ADMIN_USERNAME": ADMIN,
            "ADMIN_PASSWORD": ADMIN_PW,
            "SECRET_KEY": SECRET_KEY,
            "RUST_LOG": "info",
            # Probe every second, so health charts and alerts show up within
            # seconds. The host-down tolerance stays at its default (120 s):
            # a probe slowed by a busy lab must not fail a pair over.
            "MONITOR_INTERVAL_SECS": "1",
            "MONITOR_PROBE_TIMEOUT_SECS": "1",
            # A drill VM has to keep running 2 s (not a minute), and a DC VM
            # that does not shut down cleanly is stopped after 5 s.
            "DRILL_BOOT_SECS": "2",
            "FENCE_SHUTDOWN_SECS": "5",
        }
        self.proc = None
        self.base = None

    def pubkey(self):
        """Runs `drswitch pubkey` (makes the key) and returns the public key file."""
        r = subprocess.run([BINARY, "pubkey"], env=self.env, cwd=self.workdir, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0 or not r.stdout.strip().startswith("ssh-ed25519 "):
            raise RuntimeError(f"drswitch pubkey failed ({r.returncode}): {r.stdout}{r.stderr}")
        path = os.path.join(self.env["DATA_DIR"], "ssh", "id_ed25519.pub")
        with open(path) as f:
            if f.read().split()[:2] != r.stdout.split()[:2]:
                raise RuntimeError("drswitch pubkey printed a different key than " + path)
        return path

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BINARY, "serve"], env=self.env, cwd=self.workdir, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()

        def bound():
            m = self.MARKER.search(self.ANSI.sub("", self.log()))
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"drswitch exited with {self.proc.returncode} before listening:\n{self.log()}")
            return None

        try:
            addr = wait_until(bound, timeout=60, interval=0.02, what="drswitch listening")
        except AssertionError:
            raise RuntimeError("drswitch did not start:\n" + self.log())
        self.base = "http://" + addr
        health = Api(self.base).get("/api/v1/health")
        if health.get("status") != "ok":
            raise RuntimeError(f"health check: {health}")

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chrome(user_data_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={user_data_dir}", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(arg)
    # Leave dialogs open so a test sees (and answers) every confirm or alert itself.
    options.set_capability("unhandledPromptBehavior", "ignore")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    fit_viewport(driver)
    driver.set_page_load_timeout(60)
    return driver


def fit_viewport(driver):
    """Makes the page area (what a screenshot holds) exactly WIDTH x HEIGHT."""
    inner = lambda: tuple(driver.execute_script("return [window.innerWidth, window.innerHeight]"))
    if inner() == (WIDTH, HEIGHT):
        return
    outer = driver.get_window_size()
    w, h = inner()
    driver.set_window_size(outer["width"] + WIDTH - w, outer["height"] + HEIGHT - h)
    if inner() != (WIDTH, HEIGHT):
        raise RuntimeError(f"the browser's page area is {inner()}, not {(WIDTH, HEIGHT)}")


class Suite:
    """Everything the tests share; `start()` cleans up after itself on failure."""

    def __init__(self):
        self.tmp = None
        self.server = None
        self.lab = None
        self.driver = None
        self.receiver = None
        self.ids = {}  # what tests made and later tests use: hypervisor, pair, task ids

    def start(self):
        for path, what in ((BINARY, "the debug binary (run `cargo build` or scripts/test.sh first)"),
                           (CHROMIUM, "chromium (apt-get install chromium)"),
                           (CHROMEDRIVER, "chromedriver (apt-get install chromium-driver)")):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} is missing: {what}")
        self.tmp = tempfile.mkdtemp(prefix="drswitch-ui-", dir="/tmp")
        # Interrupted runs clean up too: Ctrl-C and SIGTERM end through atexit.
        atexit.register(self.stop)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self.server = Server(self.tmp)
            pubkey = self.server.pubkey()
            self.lab = LabProcess(self.tmp, pubkey, ["dc1", "drc1"])
            self.server.start()
            self.driver = chrome(os.path.join(self.tmp, "chromium-profile"))
            self.api = Api(self.server.base).login_with_token(ADMIN, ADMIN_PW)
            self.receiver = Receiver()
            os.makedirs(SCREENSHOTS, exist_ok=True)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        errors = []
        for what, step in (("browser", lambda: self.driver and self.driver.quit()),
                           ("webhook receiver", lambda: self.receiver and self.receiver.stop()),
                           ("drswitch", lambda: self.server and self.server.stop()),
                           ("lab", lambda: self.lab and self.lab.stop())):
            try:
                step()
            except Exception as e:  # keep tearing down the rest
                errors.append(f"{what}: {e}")
        self.driver = self.server = self.lab = self.receiver = None
        if self.tmp and not os.environ.get("DRSWITCH_UI_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            print("teardown problems: " + "; ".join(errors), file=sys.stderr)

    @property
    def base(self):
        return self.server.base

    def url(self, path):
        return self.base + path


class Page:
    """Small Selenium helpers on top of a driver."""

    def __init__(self, suite, timeout=20):
        self.suite = suite
        self.d = suite.driver
        self.timeout = timeout

    def wait(self, timeout=None):
        return WebDriverWait(self.d, timeout or self.timeout, poll_frequency=0.05,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def until(self, condition, timeout=None, message=""):
        return self.wait(timeout).until(condition, message)

    def open(self, path):
        self.d.get(self.suite.url(path))
        self.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def path(self):
        return urllib.parse.urlsplit(self.d.current_url).path

    def css(self, selector):
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def css_all(self, selector):
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def button(self, label, scope=None):
        return (scope or self.d).find_element(By.XPATH, f".//button[normalize-space()={xpath_str(label)}]")

    def buttons(self, label, scope=None):
        return (scope or self.d).find_elements(By.XPATH, f".//button[normalize-space()={xpath_str(label)}]")

    def link(self, label, scope=None):
        return (scope or self.d).find_element(By.XPATH, f".//a[normalize-space()={xpath_str(label)}]")

    def links(self, label, scope=None):
        return (scope or self.d).find_elements(By.XPATH, f".//a[normalize-space()={xpath_str(label)}]")

    def field(self, name, scope=None):
        return (scope or self.d).find_element(By.CSS_SELECTOR, f"[name='{name}']:not([type='hidden'])")

    def fill(self, values, scope=None):
        """Types into inputs and chooses select options (by value)."""
        for name, value in values.items():
            el = self.field(name, scope)
            if el.tag_name == "select":
                Select(el).select_by_value(str(value))
            elif el.get_attribute("type") == "checkbox":
                if el.is_selected() != bool(value):
                    el.click()
            else:
                el.clear()
                el.send_keys(str(value))

    def click_and_wait_load(self, element):
        """Clicks something that loads a new page and waits for that page."""
        html = self.d.find_element(By.TAG_NAME, "html")
        element.click()
        self.until(gone(html), message="the page did not change")
        self.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def confirm(self, accept=True):
        """Answers the window.confirm a destructive button asks; returns its text."""
        alert = self.until(EC.alert_is_present(), message="no confirm dialog opened")
        text = alert.text
        if accept:
            alert.accept()
        else:
            alert.dismiss()
        return text

    def click_confirm_and_wait_load(self, element, accept=True):
        html = self.d.find_element(By.TAG_NAME, "html")
        element.click()
        text = self.confirm(accept)
        if accept:
            self.until(gone(html), message="the page did not change after confirming")
            self.until(lambda d: d.execute_script("return document.readyState") == "complete")
        return text

    def text_of(self, element):
        """The text as written in the page (`.text` applies CSS text-transform)."""
        return " ".join(element.get_attribute("textContent").split())

    def flash(self):
        flashes = self.css_all(".flash")
        return " ".join(f.text for f in flashes)

    def who(self):
        """The header's "username · role", or None on a page without it."""
        found = self.css_all("header .who span")
        return found[0].text if found else None

    def login(self, username, password):
        """Logs in through the form; the browser's cookies are dropped first."""
        self.d.delete_all_cookies()
        self.open("/login")
        self.fill({"username": username, "password": password})
        self.click_and_wait_load(self.button("Log in"))
        self.until(lambda d: self.who() is not None, message=f"login as {username} did not reach a page")

    def ensure_user(self, username, password):
        if self.who() is None or not self.who().startswith(username + " "):
            self.open("/")
            if self.who() is None or not self.who().startswith(username + " "):
                self.login(username, password)

    def no_alert(self):
        try:
            self.d.switch_to.alert
        except NoAlertPresentException:
            return True
        return False

    def screenshot(self, name):
        fit_viewport(self.d)
        path = os.path.join(SCREENSHOTS, name)
        if not self.d.save_screenshot(path):
            raise AssertionError(f"could not save {path}")
        return path

    def table_rows(self, scope=None):
        """The rows of the first table body as lists of cell texts."""
        rows = (scope or self.d).find_elements(By.CSS_SELECTOR, "table tbody tr")
        return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in rows]

    def console_errors(self):
        return [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]


def xpath_str(s):
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in s.split("'")) + ")"
