"""The web console end to end: headless Chromium (Debian's ``chromium``, driven by Playwright)
against a real ``chronosdb serve``.

Log in, run a query and see rows and a drawn chart (pixels of the series' colour on the canvas),
hover, zoom by dragging (the query is re-run with a narrower time range), export CSV, complete
names, stream live points, create and revoke a key, and look at the browser, admin, status and
docs pages. The pure modules (time ticks, SSE framing, the zoom rewrite, the metrics parser) are
checked inside the browser too.

With ``CHRONOSDB_SCREENSHOTS=1`` the page screenshots are written to docs/images/ (the ones the
docs show); otherwise to a temp dir, so a run never dirties the checkout.
"""
from __future__ import annotations

import json
import os
import re
import time

import pytest

from serverproc import ROOT, ServerProcess

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

POINTS_PER_HOST = 60
STEP_S = 10
SERIES_BLUE = (42, 111, 219)  # COLORS[0] in chart.js, the first series' line


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("e2e") / "data")).start()
    assert s.query("CREATE DATABASE db")[0] == 200
    end = int(time.time()) - 60
    lines = []
    for i in range(POINTS_PER_HOST):
        t = (end - (POINTS_PER_HOST - i) * STEP_S) * 10**9
        lines.append(f"cpu,host=a usage={20 + 10 * (i % 7)} {t}")
        lines.append(f"cpu,host=b usage={60 + 5 * (i % 5)} {t}")
    assert s.write("\n".join(lines).encode())[0] == 204
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    if os.environ.get("CHRONOSDB_SCREENSHOTS") == "1":
        d = os.path.join(ROOT, "docs", "images")
        os.makedirs(d, exist_ok=True)
        return d
    return str(tmp_path_factory.mktemp("shots"))


@pytest.fixture
def page(browser, server):
    """A fresh browser context (empty session storage), logged in with the admin key."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True,
                              timezone_id="UTC")
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: d.accept())
    pg.set_default_timeout(15000)
    pg.goto(server_url(server, "/"))
    pg.fill("#login-key", server.admin_key)
    pg.click("#login-form button")
    pg.wait_for_selector("#q-editor textarea")
    yield pg
    ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def wait_js(pg, expression: str, timeout: float = 15000):
    """Poll a JavaScript expression until it is truthy. (Playwright's wait_for_function compiles
    its predicate with eval inside the page, which the console's CSP rightly forbids.)"""
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = pg.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        pg.wait_for_timeout(50)


def server_url(server, path):
    return f"http://127.0.0.1:{server.port}{path}"


def run_query(pg, q, db="db"):
    pg.select_option("#q-db", db)
    pg.fill("#q-editor textarea", q)
    pg.press("#q-editor textarea", "Control+Enter")


def canvas_pixels_of(pg, selector, rgb) -> int:
    """How many canvas pixels are (nearly) the given colour: proof that a line was drawn."""
    return pg.evaluate("""([sel, rgb]) => {
        const c = document.querySelector(sel);
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
            if (Math.abs(d[i] - rgb[0]) < 30 && Math.abs(d[i+1] - rgb[1]) < 30 && Math.abs(d[i+2] - rgb[2]) < 30 && d[i+3] > 200) n++;
        return n;
    }""", [selector, list(rgb)])


def test_login_refuses_a_bad_key_and_keeps_the_key_in_the_session_only(browser, server):
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(server_url(server, "/"))
    pg.fill("#login-key", "cdb_not_a_real_key")
    pg.click("#login-form button")
    wait_js(pg, "document.querySelector('#login-error').textContent.includes('did not accept')")
    assert pg.is_hidden("#shell")
    pg.fill("#login-key", server.admin_key)
    pg.click("#login-form button")
    pg.wait_for_selector("#q-editor textarea")
    assert pg.evaluate("sessionStorage.getItem('chronosdb.key')") == server.admin_key
    assert server.admin_key not in pg.evaluate("JSON.stringify(localStorage)")
    pg.click("#logout")
    pg.wait_for_selector("#login:not([hidden])")
    assert pg.evaluate("sessionStorage.getItem('chronosdb.key')") is None
    ctx.close()


def test_query_shows_rows_and_draws_a_chart_with_a_readout(page, shots):
    run_query(page, "SELECT usage FROM cpu GROUP BY host")
    page.wait_for_selector("#q-results table")
    assert page.locator("#q-results .series").count() == 2
    assert page.locator("#q-results tbody tr").count() == 2 * POINTS_PER_HOST
    wait_js(page, f"document.querySelector('#q-chart canvas').dataset.points === '{2 * POINTS_PER_HOST}'")
    assert canvas_pixels_of(page, "#q-chart canvas", SERIES_BLUE) > 100
    legend = page.inner_text("#q-chart .chart-legend")
    assert "cpu host=a.usage" in legend and "cpu host=b.usage" in legend
    box = page.locator("#q-chart canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#q-chart .chart-readout:not([hidden])")
    readout = page.inner_text("#q-chart .chart-readout")
    assert "cpu host=a.usage" in readout and "cpu host=b.usage" in readout
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3}", readout)  # the hovered time, to the millisecond
    page.screenshot(path=os.path.join(shots, "query.png"))


def test_a_parse_error_is_shown_and_marked_at_its_position(page):
    run_query(page, "SELECT usage\nFROM cpu WHERE")
    page.wait_for_selector("#q-msg.error")
    msg = page.inner_text("#q-msg")
    assert "error parsing query" in msg and "at line 2" in msg
    page.wait_for_selector("#q-editor mark.err")
    run_query(page, "SELECT FROM cpu")
    wait_js(page, "document.querySelector('#q-msg').textContent.includes('char 8')")
    assert page.inner_text("#q-editor mark.err") == "F"  # char 8 of line 1


def test_dragging_across_the_chart_requeries_the_narrower_range(page):
    run_query(page, "SELECT usage FROM cpu WHERE host = 'a'")
    wait_js(page, f"document.querySelector('#q-chart canvas').dataset.points === '{POINTS_PER_HOST}'")
    before = page.evaluate("[+document.querySelector('#q-chart canvas').dataset.tmin, +document.querySelector('#q-chart canvas').dataset.tmax]")
    box = page.locator("#q-chart canvas").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.35, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.65, y, steps=5)
    page.mouse.up()
    page.wait_for_selector("#q-reset:not([hidden])")
    q = page.input_value("#q-editor textarea")
    assert "WHERE (host = 'a') AND time >= '" in q and "AND time <= '" in q
    rows = page.locator("#q-results tbody tr").count()
    assert 0 < rows < POINTS_PER_HOST
    after = page.evaluate("[+document.querySelector('#q-chart canvas').dataset.tmin, +document.querySelector('#q-chart canvas').dataset.tmax]")
    assert after[1] - after[0] < (before[1] - before[0]) / 2
    page.click("#q-reset")
    wait_js(page, f"document.querySelectorAll('#q-results tbody tr').length === {POINTS_PER_HOST}")
    assert page.input_value("#q-editor textarea") == "SELECT usage FROM cpu WHERE host = 'a'"


def test_results_export_as_csv(page):
    run_query(page, "SELECT usage FROM cpu GROUP BY host")
    page.wait_for_selector("#q-results table")
    with page.expect_download() as dl:
        page.click("#q-csv")
    with open(dl.value.path(), newline="") as f:
        text = f.read()
    lines = text.strip().split("\r\n")
    assert lines[0] == "name,host,time,usage"
    assert len(lines) == 1 + 2 * POINTS_PER_HOST
    assert re.fullmatch(r"cpu,a,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z,20", lines[1])


def test_completion_offers_measurements_fields_and_tag_values(page):
    page.select_option("#q-db", "db")
    ta = "#q-editor textarea"
    page.fill(ta, "")
    page.type(ta, "SELECT * FROM c")
    page.wait_for_selector("#q-editor .completions:not([hidden]) li")
    assert "cpu" in page.inner_text("#q-editor .completions")
    page.press(ta, "Tab")
    assert page.input_value(ta) == "SELECT * FROM cpu"
    page.type(ta, " WHERE host = '")
    page.press(ta, "Control+Space")
    wait_js(page, "document.querySelector('#q-editor .completions').innerText.includes('b')")
    page.press(ta, "ArrowDown")
    page.press(ta, "Enter")
    assert page.input_value(ta) == "SELECT * FROM cpu WHERE host = 'b'"
    page.fill(ta, "SELECT us")
    page.press(ta, "Control+Space")
    wait_js(page, "document.querySelector('#q-editor .completions').innerText.includes('usage')")
    # highlighting: keywords, strings and durations get their classes
    page.fill(ta, "SELECT mean(usage) FROM cpu WHERE host = 'a' AND time > now() - 1h GROUP BY time(5m)")
    hl = page.inner_html("#q-editor .editor-hl")
    for cls in ("tok-keyword", "tok-function", "tok-string", "tok-duration"):
        assert cls in hl


def test_history_keeps_queries_that_ran(page):
    run_query(page, "SHOW MEASUREMENTS")
    page.wait_for_selector("#q-results table")
    page.click("#q-history-toggle")
    assert "SHOW MEASUREMENTS" in page.inner_text("#q-history")


def test_live_switch_streams_points_into_table_and_chart(page, server, shots):
    status, _h, _b = server.request("GET", "/stream?db=db&q=SELECT%20*%20FROM%20nothing%20LIMIT%201", key=None)
    if status == 404:
        pytest.skip("the server has no /stream endpoint yet")
    page.select_option("#q-db", "db")
    page.fill("#q-editor textarea", "SELECT usage FROM cpu WHERE host = 'live'")
    page.check("#q-live")
    wait_js(page, "document.querySelector('#q-live-status').textContent.includes('live (open)')")
    now = time.time_ns()
    for batch in range(3):
        body = "\n".join(f"cpu,host=live usage={batch * 10 + i} {now + (batch * 10 + i) * 10**9}" for i in range(10))
        assert server.write(body.encode())[0] == 204
    wait_js(page, "document.querySelector('#q-live-status').textContent.includes('30 points received')")
    wait_js(page, "document.querySelectorAll('#q-results tbody tr').length === 30")
    wait_js(page, "document.querySelector('#q-chart canvas').dataset.points === '30'")
    assert canvas_pixels_of(page, "#q-chart canvas", SERIES_BLUE) > 20
    # the newest value is on top of the live table
    assert page.inner_text("#q-results tbody tr >> nth=0").split()[-1] == "29"
    page.screenshot(path=os.path.join(shots, "live.png"))
    page.uncheck("#q-live")
    wait_js(page, "document.querySelector('#q-live-status').textContent === ''")


def test_keys_are_created_shown_once_and_revoked(page, server, shots):
    page.goto(server_url(server, "/#/keys"))
    page.wait_for_selector("#k-table")
    page.select_option("#k-create select[name=database]", "db")
    page.select_option("#k-create select[name=scope]", "read")
    page.fill("#k-create input[name=description]", "e2e reader")
    page.click("#k-create button")
    page.wait_for_selector("#k-new:not([hidden])")
    key = page.inner_text("#k-new-key").strip()
    assert key.startswith("cdb_")
    assert server.query("SHOW MEASUREMENTS", db="db", key=key)[0] == 200
    row = page.locator("#k-table tr", has_text="e2e reader")
    row.wait_for()
    key_id = row.get_attribute("data-id")
    page.screenshot(path=os.path.join(shots, "keys.png"))
    page.click("#k-done")
    assert page.inner_text("#k-new-key") == ""  # gone from the page once dismissed
    page.click(f"[data-revoke='{key_id}']")
    wait_js(page, f"!document.querySelector(\"#k-table tr[data-id='{key_id}']\")")
    assert server.query("SHOW MEASUREMENTS", db="db", key=key)[0] == 401


def test_browser_shows_measurements_series_fields_and_tags(page, server, shots):
    page.goto(server_url(server, "/#/browse"))
    page.wait_for_selector("#b-ms li[data-i]")
    cpu = page.locator("#b-ms li", has_text="cpu")
    assert cpu.locator(".badge").inner_text() in ("2", "3")  # 3 once the live test has written
    cpu.click()
    page.wait_for_selector("#b-fields li[data-i]")
    assert "usage" in page.inner_text("#b-fields") and "float" in page.inner_text("#b-fields")
    assert "cpu,host=a" in page.inner_text("#b-series")
    assert "host" in page.inner_text("#b-tags")
    page.screenshot(path=os.path.join(shots, "browse.png"))
    page.locator("#b-series li", has_text="cpu,host=a").click()  # opens the query page and runs it
    wait_js(page, f"document.querySelectorAll('#q-results tbody tr').length === {POINTS_PER_HOST}")


def test_databases_and_retention_policies_are_managed(page, server, shots):
    page.goto(server_url(server, "/#/databases"))
    page.wait_for_selector("section[data-db='db']")
    page.fill("#d-name", "scratch")
    page.click("#d-create button")
    section = page.locator("section[data-db='scratch']")
    section.wait_for()
    form = section.locator("form")
    form.locator("input[name=name]").fill("week")
    form.locator("input[name=duration]").fill("7d")
    form.locator("button").click()
    wait_js(page, "document.querySelector(\"section[data-db='scratch']\").innerText.includes('week')")
    page.screenshot(path=os.path.join(shots, "databases.png"))
    page.locator("section[data-db='scratch'] [data-drop-db]").click()
    wait_js(page, "!document.querySelector(\"section[data-db='scratch']\")")
    names = [r[0] for r in server.query("SHOW DATABASES")[1]["results"][0]["series"][0]["values"]]
    assert "scratch" not in names


def test_continuous_queries_page_shows_the_servers_answer(page, server):
    page.goto(server_url(server, "/#/cqs"))
    wait_js(page, "document.querySelector('#c-list')?.innerText.length > 0 "
                  "|| document.querySelector('#c-msg')?.innerText.length > 0")
    status, body = server.query("SHOW CONTINUOUS QUERIES")
    error = (body.get("results") or [{}])[0].get("error") if status == 200 else body.get("error")
    if error:  # statements not there yet: the page says what the server said
        assert error in page.inner_text("#c-msg")
    else:
        assert page.inner_text("#c-msg") == ""


def test_status_page_shows_live_metrics(page, server, shots):
    page.goto(server_url(server, "/#/status"))
    page.wait_for_selector(".tile[data-metric='shards']")
    assert int(page.inner_text(".tile[data-metric='shards'] .value")) >= 1
    # after the second scrape the rates are numbers
    wait_js(page, "/^[0-9.]+$/.test(document.querySelector(\".tile[data-metric='points/s'] .value\").innerText)",
                           timeout=20000)
    assert page.inner_text(".tile[data-metric='queries/s'] .value").replace(".", "").isdigit()
    # writes show up as a positive points/s rate on a later refresh
    deadline = time.monotonic() + 20
    t = time.time_ns()
    while float(page.inner_text(".tile[data-metric='points/s'] .value")) <= 0:
        assert time.monotonic() < deadline, "points/s never rose above 0 while points were written"
        t += 10**9
        body = "\n".join(f"mem,host=s{i} used={i} {t}" for i in range(50))
        assert server.write(body.encode())[0] == 204
        page.wait_for_timeout(250)
    page.screenshot(path=os.path.join(shots, "status.png"))


def test_docs_are_browsable(browser, server, shots):
    pg = browser.new_page(viewport={"width": 1280, "height": 860})
    pg.goto(server_url(server, "/docs"))
    assert pg.locator(".docs-nav a[href='/docs/format/wal']").count() == 1
    pg.click(".docs-nav a[href='/docs/auth']")
    pg.wait_for_url("**/docs/auth")
    assert "Authentication" in pg.inner_text("main.doc h1")
    pg.screenshot(path=os.path.join(shots, "docs.png"))
    pg.close()


def test_pure_modules_in_the_browser(page):
    """Time ticks, SSE framing, the zoom rewrite and the metrics parser, run by Chromium itself."""
    r = page.evaluate("""async () => {
        const chart = await import('/console/chart.js');
        const api = await import('/console/api.js');
        const ql = await import('/console/influxql.js');
        const status = await import('/console/pages/status.js');
        const out = {};
        out.steps = [10e3, 60e3, 3600e3, 86400e3, 30 * 86400e3].map((s) => chart.chooseTimeStep(s, 8));
        const t0 = Date.UTC(2024, 0, 1, 10, 3, 7);
        out.utc = chart.timeTicks(t0, t0 + 3600e3, 'UTC', 8).map((t) => t.label);
        // Kolkata is UTC+5:30: hourly ticks fall on its whole hours, i.e. at :30 UTC
        out.kolkata = chart.timeTicks(t0, t0 + 6 * 3600e3, 'Asia/Kolkata', 8)
            .map((t) => [t.label, new Date(t.t).getUTCMinutes()]);
        out.nice = chart.niceTicks(0, 97, 5);
        const p = new api.SseParser();
        const chunks = ['id: 7\\nevent: po', 'ints\\ndata: {"series":', '[]}\\n\\n: heartbeat\\n\\n', 'event: dropped\\r\\ndata: {"missed": 3}\\r\\n\\r\\n'];
        out.sse = chunks.flatMap((c) => p.feed(c));
        out.zoom = ql.withTimeRange("SELECT mean(v) FROM m WHERE a = 'x' OR b = 'y' GROUP BY time(1m) fill(none)", 0, 60000);
        out.zoomNoWhere = ql.withTimeRange("SELECT v FROM m LIMIT 5;", 0, 1000);
        out.offset = ql.errorOffset("x at line 2, char 3", "ab\\ncdef");
        const samples = status.parsePrometheus('# HELP x\\nchronosdb_http_requests_total{route="/query",status="200"} 4\\nchronosdb_http_requests_total{route="/query",status="400"} 1\\nchronosdb_shards 2\\n');
        out.queries = status.total(samples, 'chronosdb_http_requests_total', {route: '/query'});
        out.tokens = ql.tokenize("SELECT a/2 FROM /cpu.*/ WHERE h =~ /x\\\\/y/").filter((t) => t.type !== 'ws').map((t) => t.type);
        return out;
    }""")
    assert r["steps"] == [2000, 10000, 600000, 10800000, 7 * 86400000]
    assert r["utc"] == ["10:10", "10:20", "10:30", "10:40", "10:50", "11:00"]
    assert [m for _label, m in r["kolkata"]] == [30] * len(r["kolkata"])
    assert r["kolkata"][0][0] == "16:00"
    assert r["nice"] == [0, 20, 40, 60, 80]
    assert r["sse"] == [{"event": "points", "data": '{"series":[]}', "id": "7"},
                        {"event": "dropped", "data": '{"missed": 3}', "id": None}]
    assert r["zoom"] == ("SELECT mean(v) FROM m WHERE (a = 'x' OR b = 'y') AND time >= '1970-01-01T00:00:00.000Z' "
                         "AND time <= '1970-01-01T00:01:00.000Z' GROUP BY time(1m) fill(none)")
    assert r["zoomNoWhere"] == ("SELECT v FROM m WHERE time >= '1970-01-01T00:00:00.000Z' AND "
                                "time <= '1970-01-01T00:00:01.000Z' LIMIT 5")
    assert r["offset"] == 5
    assert r["queries"] == 5
    assert r["tokens"] == ["keyword", "ident", "operator", "number", "keyword", "regex", "keyword",
                           "ident", "operator", "regex"]
    json.dumps(r)


def test_a_live_query_stops_with_the_servers_message_when_its_key_is_revoked(browser, server):
    status, made = server.json("POST", "/api/keys", json.dumps({"database": "db", "scope": "read"}).encode())
    assert status == 201
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(server_url(server, "/"))
    pg.fill("#login-key", made["key"])
    pg.click("#login-form button")
    pg.wait_for_selector("#q-editor textarea")
    pg.select_option("#q-db", "db")
    pg.fill("#q-editor textarea", "SELECT usage FROM cpu WHERE host = 'nobody'")
    pg.check("#q-live")
    wait_js(pg, "document.querySelector('#q-live-status').textContent.includes('live (open)')")
    assert server.request("DELETE", f"/api/keys/{made['id']}")[0] == 204
    wait_js(pg, "document.querySelector('#q-msg').textContent.includes('Live query stopped')")
    assert "revoked" in pg.inner_text("#q-msg")
    assert not pg.is_checked("#q-live")
    # the next request is refused and the console asks for a key again
    pg.click("#nav a[data-page='browse']")
    pg.wait_for_selector("#login:not([hidden])")
    assert "refused" in pg.inner_text("#login-error")
    ctx.close()


def test_times_follow_the_chosen_time_zone(page):
    run_query(page, "SELECT usage FROM cpu WHERE host = 'a' LIMIT 1")
    page.wait_for_selector("#q-results tbody tr")
    t_utc = page.inner_text("#q-results tbody td >> nth=0")
    page.select_option("#q-tz", "Asia/Tokyo")  # UTC+9, no daylight saving
    wait_js(page, f"document.querySelector('#q-results tbody td').innerText !== {json.dumps(t_utc)}")
    t_tokyo = page.inner_text("#q-results tbody td >> nth=0")
    h_utc, h_tokyo = int(t_utc.split(", ")[1][:2]), int(t_tokyo.split(", ")[1][:2])
    assert (h_tokyo - h_utc) % 24 == 9
    assert t_utc.split(", ")[1][2:] == t_tokyo.split(", ")[1][2:]  # same minutes and seconds
