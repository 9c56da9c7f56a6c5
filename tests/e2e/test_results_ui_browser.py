"""The results UI as a user meets it: headless Chromium against a real `mlfleet up` after a real sweep.

One sweep (three logistic_l1 trials on iris, one of them failing inside scikit-learn) runs through
the scheduler; then the browser signs in on Airflow's own login form, opens "Experiments" from
Airflow's nav and the "Results" tab of the DAG run, and works the pages the way a person would:
sort, filter, look at the plots, open a trial, the drift and models pages. Each page is saved as
a screenshot under the test's tmp dir, and under $MLFLEET_SCREENSHOT_DIR when set
(`make screenshots` writes docs/images/ui/ for the README).

Selenium never touches the network: Debian's chromium and chromedriver
(scripts/install-system-deps) at fixed paths, so Selenium Manager is never asked for a driver,
and SE_AVOID_STATS keeps it from reporting usage.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlfleet.config import Settings, get_settings
from mlfleet.devstack import stack as airflow_local
from mlfleet.devstack.environment import admin_password
from mlfleet.devstack.ports import free_port
from mlfleet.devstack.rest_client import ApiClient, api_token

pytestmark = pytest.mark.slow

DAG_ID = "experiment_sweep"
EXPERIMENT = "iris-ui"
SPEC = {
    "name": EXPERIMENT,
    "task": "classification",
    "target": "target",
    "metric": "accuracy",
    "dataset": {"builtin": "iris"},
    "cv": {"folds": 3, "seed": 0},
    # C must be > 0: scikit-learn refuses -1.0 when the trial fits, so that trial fails, visibly.
    "models": [{"type": "logistic_l1", "params": {"C": [-1.0, 0.1, 1.0]}}],
}
MLFLEET = str(Path(sys.executable).parent / "mlfleet")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/lib/chromium/chromium")  # the binary itself, not Debian's /usr/bin wrapper script
WAIT_S = 30
# The app is built on its first request and MLflow imported on the first page that reads the registry:
# seconds each on a loaded 2-core machine, over httpx's 5 s default.
HTTP_S = 60


@dataclass(frozen=True)
class Sweep:
    """The stack and the finished sweep the tests look at."""

    url: str
    username: str
    password: str
    token: str
    dag_run_id: str  # Airflow's run id
    run_id: str  # the sweep's own id (its results directory)
    best: dict[str, Any]
    registered_model: dict[str, Any] | None

    @property
    def app(self) -> str:
        return f"{self.url}/mlfleet"

    @property
    def run_path(self) -> str:
        return f"/mlfleet/experiments/{EXPERIMENT}/{self.run_id}"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    """`mlfleet up` on a free port with a fresh MLFLEET_HOME, and one finished grid sweep."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLEET_HOME", str(tmp_path_factory.mktemp("ui") / "mlfleet"))
        env.setenv("MLFLEET_AIRFLOW_PORT", str(free_port()))
        settings = get_settings()
        try:
            out = subprocess.run([MLFLEET, "up"], capture_output=True, text=True, env=os.environ, timeout=240)
            assert out.returncode == 0, out.stderr[-2000:]
            yield _finished_sweep(settings)
        finally:
            airflow_local.down(settings)


def _finished_sweep(settings: Settings) -> Sweep:
    url = f"http://127.0.0.1:{settings.airflow_port}"
    password = admin_password(settings)
    token = api_token(url, settings.airflow_username, password)
    with ApiClient(url, token) as api:
        api.wait_for_dag(DAG_ID, timeout=90)
        api.unpause(DAG_ID)
        dag_run_id = api.trigger(DAG_ID, {"spec": SPEC})["dag_run_id"]
        runs, state = api.wait_for_sweep(DAG_ID, dag_run_id, timeout=300)
        assert state == "success", [(ti["task_id"], ti["state"]) for ti in api.task_instances(DAG_ID, runs[-1])]
        ids = api.xcom(DAG_ID, dag_run_id, "prepare", key="sweep")
        board = api.xcom(DAG_ID, runs[-1], "end_round")
    assert ids["experiment"] == EXPERIMENT and board["n_trials"] == 3, board
    return Sweep(url=url, username=settings.airflow_username, password=password, token=token,
                 dag_run_id=dag_run_id, run_id=ids["run_id"], best=board["best"],
                 registered_model=board.get("registered_model"))


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Where screenshots go: the test's tmp dir, and $MLFLEET_SCREENSHOT_DIR when set."""
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("MLFLEET_SCREENSHOT_DIR"):
        dirs.append(Path(os.environ["MLFLEET_SCREENSHOT_DIR"]).resolve())
    for folder in dirs:
        folder.mkdir(parents=True, exist_ok=True)
    return dirs


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver; Selenium Manager and its stats never run."""
    if not (CHROMEDRIVER.is_file() and CHROMIUM.is_file()):
        pytest.fail(f"needs {CHROMIUM} and {CHROMEDRIVER}: run scripts/install-system-deps")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_AVOID_STATS", "true")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                    # plotly's parallel coordinates draw with WebGL: headless has no GPU, and Chromium
                    # is retiring its silent fallback to the software renderer (it warns already).
                    "--enable-unsafe-swiftshader"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def browser(chromium: Any, sweep: Sweep) -> Any:
    """The browser signed in the way a person does it: on Airflow's own login form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    chromium.get(f"{sweep.url}/")
    # SimpleAuthManager's form: inputs named `username` and `password`, and a submit button.
    _css(chromium, "input[name=username]", visible=True).send_keys(sweep.username)
    chromium.find_element(By.NAME, "password").send_keys(sweep.password)
    sign_in = EC.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))
    _wait(chromium, sign_in, "'Sign in' stayed disabled").click()
    _wait(chromium, lambda d: d.get_cookie("_token") is not None and "/auth/login" not in d.current_url,
          "signing in did not set Airflow's _token cookie")
    return chromium


def _wait(driver: Any, condition: Any, message: str, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition, message)


def _css(driver: Any, selector: str, *, visible: bool = False) -> Any:
    """Wait for the element (in the current frame) and return it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    locate = EC.visibility_of_element_located if visible else EC.presence_of_element_located
    return _wait(driver, locate((By.CSS_SELECTOR, selector)), f"no {selector!r} on {driver.current_url}")


def _click(driver: Any, selector: str, message: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    _wait(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, selector)), message).click()


def _snap(driver: Any, shots: list[Path], name: str) -> None:
    """Save what the window shows (the whole Airflow page, iframe included)."""
    driver.switch_to.default_content()
    first, *others = shots
    assert driver.save_screenshot(str(first / name)), name
    for folder in others:
        shutil.copyfile(first / name, folder / name)


def _into_plugin_frame(driver: Any, page_selector: str) -> None:
    """Switch into the iframe Airflow shows an external view in, once the app's page is there."""
    from selenium.webdriver.support import expected_conditions as EC

    driver.switch_to.default_content()
    frame = _css(driver, "iframe")
    _wait(driver, EC.frame_to_be_available_and_switch_to_it(frame), "the iframe never loaded")
    _css(driver, page_selector)


def _showing(driver: Any, page_selector: str) -> bool:
    """Whether Airflow shows an external view whose page has `page_selector` (left in the top page)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    driver.switch_to.default_content()
    frames = driver.find_elements(By.TAG_NAME, "iframe") if "/plugin/" in driver.current_url else []
    try:
        if frames:
            driver.switch_to.frame(frames[0])
            return bool(driver.find_elements(By.CSS_SELECTOR, page_selector))
        return False
    except WebDriverException:
        return False
    finally:
        driver.switch_to.default_content()


def _open_view(driver: Any, page: str, link: str, *, ready: str, again: bool) -> None:
    """An Airflow page's link to one of the app's views (unless that view shows already), then into
    its iframe. From any other Airflow page: clicking a nav entry again would keep the iframe on
    whichever app page it shows."""
    if again or not _showing(driver, ready.split(" ")[0]):
        driver.get(page)
        _click(driver, link, f"no {link} on {page}")
        _wait(driver, lambda d: "/plugin/" in d.current_url, f"{link} did not open a plugin page")
    _into_plugin_frame(driver, ready)


def _open_experiments(driver: Any, sweep: Sweep, *, again: bool = False) -> None:
    """Airflow's "Experiments" nav entry (a top-level entry: its aria-label is the view's name)."""
    _open_view(driver, f"{sweep.url}/", "a[aria-label='Experiments']", ready="table#experiments", again=again)


def _open_results_tab(driver: Any, sweep: Sweep, *, again: bool = False) -> None:
    """The DAG run's page in Airflow, its "Results" tab."""
    _open_view(driver, f"{sweep.url}/dags/{DAG_ID}/runs/{sweep.dag_run_id}", "a[title='Results']",
               ready="table#leaderboard tr.trial", again=again)


def _column(driver: Any, table: str, sort_key: str) -> list[str]:
    """The `data-value`s of one leaderboard column, in the rows' current order."""
    return driver.execute_script(
        """const [table, key] = arguments;
        const heads = Array.from(document.querySelectorAll(`#${table} thead th`));
        const index = heads.findIndex((th) => th.dataset.sort === key);
        if (index < 0) return null;
        return Array.from(document.querySelectorAll(`#${table} tbody tr`))
          .map((tr) => tr.children[index].dataset.value ?? tr.children[index].textContent.trim());""",
        table, sort_key)


def _numbers(values: list[str]) -> list[float]:
    return [float(v) for v in values if v != ""]


def _visible_trials(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-status") for row in driver.find_elements(By.CSS_SELECTOR, "tr.trial")
            if row.is_displayed()]


def _path(driver: Any) -> str:
    """The current frame's own path (driver.current_url is always the top page's)."""
    return driver.execute_script("return location.pathname")


def test_every_app_route_needs_airflow_login(sweep: Sweep) -> None:
    routes = ["/mlfleet/experiments", sweep.run_path, f"{sweep.run_path}/leaderboard.csv",
              f"{sweep.run_path}/trials/{sweep.best['trial_id']}", "/mlfleet/drift", "/mlfleet/models",
              f"/mlfleet/runs/{DAG_ID}/{sweep.dag_run_id}", "/mlfleet/static/app.js"]
    anonymous = {route: httpx.get(sweep.url + route, timeout=HTTP_S).status_code for route in routes}
    assert anonymous == dict.fromkeys(routes, 401)
    bearer = httpx.get(f"{sweep.app}/experiments", headers={"Authorization": f"Bearer {sweep.token}"}, timeout=HTTP_S)
    assert bearer.status_code == 200 and EXPERIMENT in bearer.text


def test_experiments_from_airflow_nav(sweep: Sweep, browser: Any, shots: list[Path]) -> None:
    from selenium.webdriver.common.by import By

    _open_experiments(browser, sweep, again=True)
    browser.switch_to.default_content()
    src = _css(browser, "iframe").get_attribute("src")
    assert src.startswith(f"{sweep.app}/experiments"), src  # the app's page, inside Airflow's
    _into_plugin_frame(browser, "table#experiments tr.experiment-row")
    rows = browser.find_elements(By.CSS_SELECTOR, "table#experiments tr.experiment-row")
    assert len(rows) == 1 and EXPERIMENT in rows[0].text and sweep.run_id in rows[0].text, [r.text for r in rows]
    _snap(browser, shots, "experiments.png")


def test_results_tab_of_the_dag_run(sweep: Sweep, browser: Any, shots: list[Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open_results_tab(browser, sweep, again=True)
    browser.switch_to.default_content()
    src = _css(browser, "iframe").get_attribute("src")
    assert src.startswith(f"{sweep.app}/runs/{DAG_ID}/"), src
    _into_plugin_frame(browser, "table#leaderboard tr.trial")
    assert _path(browser) == sweep.run_path  # the tab names the Airflow run; the app redirected to its sweep

    statuses = [row.get_attribute("data-status") for row in browser.find_elements(By.CSS_SELECTOR, "tr.trial")]
    assert sorted(statuses) == ["failed", "success", "success"], statuses
    [best] = browser.find_elements(By.CSS_SELECTOR, "tr.trial.best")
    assert best.get_attribute("data-status") == "success" and sweep.best["trial_id"] in best.text, best.text
    [failed] = browser.find_elements(By.CSS_SELECTOR, "tr.trial[data-status=failed]")
    error = failed.find_element(By.CSS_SELECTOR, "td.error").text
    assert "'C' parameter" in error and "-1.0" in error, error  # scikit-learn's own message
    _snap(browser, shots, "run.png")

    # Sorting: a click orders the column, a second click reverses it.
    _into_plugin_frame(browser, "table#leaderboard")
    for key in ("score", "param-C"):
        header = browser.find_element(By.CSS_SELECTOR, f"#leaderboard th[data-sort='{key}']")
        header.click()
        first = _numbers(_column(browser, "leaderboard", key))
        header.click()
        second = _numbers(_column(browser, "leaderboard", key))
        assert len(first) == len(set(first)) >= 2, (key, first)
        assert first in (sorted(first), sorted(first, reverse=True)), (key, first)
        assert second == first[::-1], (key, first, second)
    browser.find_element(By.CSS_SELECTOR, "#leaderboard th[data-sort='param-C']").click()  # ascending: -1.0 first
    assert _numbers(_column(browser, "leaderboard", "param-C")) == [-1.0, 0.1, 1.0]
    assert [r.get_attribute("data-status") for r in browser.find_elements(By.CSS_SELECTOR, "tr.trial")] == [
        "failed", "success", "success"]

    # Filtering hides the rows that do not match, and clearing it shows them again.
    box = browser.find_element(By.ID, "filter")
    box.send_keys("InvalidParameterError")
    _wait(browser, lambda d: _visible_trials(d) == ["failed"], "filtering on the error text")
    box.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    box.send_keys(sweep.best["trial_id"])
    _wait(browser, lambda d: _visible_trials(d) == ["success"], "filtering on the best trial's id")
    assert browser.find_element(By.CSS_SELECTOR, "tr.trial.best").is_displayed()
    box.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    _wait(browser, lambda d: len(_visible_trials(d)) == 3, "clearing the filter")

    # Plots: plotly.js (served by the app) draws into div.plot.
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "div.plot.js-plotly-plot svg"),
          "plotly drew no plot")
    browser.execute_script("document.getElementById('plots').scrollIntoView()")
    _snap(browser, shots, "plots.png")


def test_downloads_are_the_leaderboard(sweep: Sweep, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _open_results_tab(browser, sweep)
    cookies = {"_token": browser.get_cookie("_token")["value"]}  # the browser's own login
    csv_href = browser.find_element(By.ID, "download-csv").get_attribute("href")
    json_href = browser.find_element(By.ID, "download-json").get_attribute("href")
    as_csv = httpx.get(csv_href, cookies=cookies, timeout=HTTP_S)
    as_json = httpx.get(json_href, cookies=cookies, timeout=HTTP_S)
    assert as_csv.status_code == as_json.status_code == 200
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert sorted(r["status"] for r in rows) == ["failed", "success", "success"]
    board = json.loads(as_json.text)
    assert board["best"]["trial_id"] == sweep.best["trial_id"] and len(board["trials"]) == 3


def test_trial_pages(sweep: Sweep, browser: Any, shots: list[Path]) -> None:
    from selenium.webdriver.common.by import By

    trial_path = f"{sweep.run_path}/trials/{sweep.best['trial_id']}"
    _open_results_tab(browser, sweep)
    browser.find_element(By.CSS_SELECTOR, "tr.trial.best a[href*='/trials/']").click()
    _wait(browser, lambda d: _path(d) == trial_path, "the best trial's page")
    assert sweep.best["trial_id"] in _css(browser, "h1", visible=True).text
    _snap(browser, shots, "trial.png")

    # Back to the leaderboard (WebDriver's back leaves the iframe), then the failed trial's page.
    browser.back()
    failed = "tr.trial[data-status=failed] a[href*='/trials/']"
    _into_plugin_frame(browser, failed)
    browser.find_element(By.CSS_SELECTOR, failed).click()
    _wait(browser, lambda d: "/trials/" in _path(d) and "'C' parameter" in d.find_element(By.TAG_NAME, "body").text,
          "the failed trial's page shows no scikit-learn error")


def _write_drift_report(settings: Settings, model: str) -> str:
    """A drift report as drift_monitor writes it (real statistics on a shifted window): no drift_monitor
    run is needed to see the page draw both distributions."""
    import numpy as np
    import pandas as pd

    from mlfleet.drift.statistics import drift_report, write_drift_report

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"sepal_length": rng.normal(5.8, 0.8, 400), "petal_width": rng.normal(1.2, 0.7, 400)})
    current = pd.DataFrame({"sepal_length": rng.normal(6.6, 0.8, 400), "petal_width": rng.normal(1.2, 0.7, 400)})
    report = drift_report(reference=reference, current=current, features=list(reference.columns),
                          psi_threshold=settings.drift_psi_threshold, ks_pvalue=settings.drift_ks_pvalue,
                          ks_statistic=settings.drift_ks_statistic)
    report.update(model=model, champion_version="1", window_days=settings.drift_window_days,
                  checked_at="2026-12-01T00:00:00+00:00")
    name = "20261201T000000-0a1b2c3d"
    write_drift_report(report, settings.drift_dir / model / f"{name}.json")
    return name


def test_drift_and_models_pages(sweep: Sweep, browser: Any, shots: list[Path]) -> None:
    from selenium.webdriver.common.by import By

    # The app's own links, inside the Experiments view.
    model = sweep.registered_model["name"] if sweep.registered_model else "iris-ui"
    report = _write_drift_report(get_settings(), model)
    _open_experiments(browser, sweep)
    for page in ("drift", "models"):
        _into_plugin_frame(browser, f"a[href$='/mlfleet/{page}']")
        browser.find_element(By.CSS_SELECTOR, f"a[href$='/mlfleet/{page}']").click()
        _wait(browser, lambda d, page=page: _path(d) == f"/mlfleet/{page}", f"the {page} page")
        _css(browser, "h1", visible=True)
        if page == "drift":
            browser.find_element(By.CSS_SELECTOR, f"a[href$='/drift/{model}/{report}']").click()
            _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "div.plot.js-plotly-plot svg")) >= 2,
                  "the drift report's two histograms")
            rows = browser.find_elements(By.CSS_SELECTOR, "#drift-features tbody tr")
            assert [r.get_attribute("class") for r in rows] == ["", "drifted"]  # petal_width, sepal_length
        if page == "models" and sweep.registered_model:  # the sweep registered its best model
            registered = sweep.registered_model
            text = browser.find_element(By.TAG_NAME, "body").text
            assert registered["name"] in text and f"v{registered['version']}" in text, text
            browser.find_element(By.CSS_SELECTOR, f"a[href$='/models/{registered['name']}']").click()
            _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.version-row")) == 1, "the version history")
        _snap(browser, shots, f"{page}.png")


def test_links_into_airflow_leave_the_iframe(sweep: Sweep, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _open_experiments(browser, sweep)
    link = f"tr.experiment-row a[href*='/dags/{DAG_ID}/runs/']"  # the row's "Airflow run"
    _css(browser, link, visible=True)
    browser.find_element(By.CSS_SELECTOR, link).click()
    browser.switch_to.default_content()
    # Airflow sandboxes the iframe without allow-top-navigation: the app moves Airflow's router itself.
    _wait(browser, lambda d: "/plugin/" not in d.current_url, "the link did not leave the iframe", timeout=15)
    assert browser.current_url.startswith(f"{sweep.url}/dags/{DAG_ID}/runs/"), browser.current_url
